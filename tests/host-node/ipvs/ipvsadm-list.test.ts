// ipvsadm -L output, byte for byte in ipvsadm 1.31's formats (ipvsadm.c print_title /
// print_service_entry / print_largenum / list_conn), over the live core: schedulers, flags,
// persistence, every forwarding method, IPv6, sorting, and counters and rates from real packets.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { Ipvsadm } from '../../../host-node/ipvs/ipvsadm.js';
import { largenum } from '../../../host-node/ipvs/ipvsadm-format.js';
import { buildPacket } from '../../../host-node/core/packet.js';

const HEAD = 'IP Virtual Server version 1.2.1 (size=4096)\n' +
  'Prot LocalAddress:Port Scheduler Flags\n' +
  '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';

async function fresh(): Promise<Dataplane> {
  return Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 7 });
}
function ok(dp: Dataplane, ...lines: string[]): void {
  for (const l of lines) {
    const r = dp.ipvsadm(l);
    expect(r, l).toEqual({ code: 0, stdout: '', stderr: '' });
  }
}

describe('ipvsadm -L -n', () => {
  it('prints an empty table as the header and title only', async () => {
    const dp = await fresh();
    expect(dp.ipvsadm('-L -n')).toEqual({ code: 0, stdout: HEAD, stderr: '' });
    // No arguments at all lists the table too (main()).
    expect(dp.ipvsadm([]).stdout).toBe(HEAD);
  });

  it('prints schedulers, flags, persistence, masks and every forwarding method', async () => {
    const dp = await fresh();
    ok(dp,
      '-A -t 10.96.0.10:53 -s rr',
      '-a -t 10.96.0.10:53 -r 10.244.2.7:53 -m',
      '-a -t 10.96.0.10:53 -r 10.244.1.3:5353 -m -w 5',
      '-A -u 10.96.0.10:53 -s wrr -o',
      '-a -u 10.96.0.10:53 -r 10.244.1.3:5353 -m -w 2',
      '-A -t 198.18.0.100:80 -s sh -b sh-fallback,sh-port -p 120 -M 255.255.255.0',
      '-a -t 198.18.0.100:80 -r 198.18.1.1:8080 -g',         // -g keeps the virtual port
      '-a -t 198.18.0.100:80 -r 198.18.1.2 -i -w 0',
      '-A --sctp-service 198.18.0.101:3868 -s mh -b mh-port',
      '-a --sctp-service 198.18.0.101:3868 -r 198.18.1.9:3868 -m -w 65535',
      '-A -t 198.18.0.102:443 -s lc -b flag-3',
      '-A -f 42 -s dh',
      '-a -f 42 -r 198.18.1.5 -g',
      '-A -t 198.18.0.103:0 -s wlc -p');                         // port 0 needs persistence
    // A local-node destination (the kernel picks it itself; ipvsadm cannot ask for one).
    const svc = dp.ipvs().findService({ protocol: 'tcp', address: '198.18.0.102', port: 443 })!;
    dp.ipvs().addDest(svc, { address: '198.18.0.254', port: 443, forwarding: 'local', weight: 4 });
    // 198.18.x sorts before 10.96.x: libipvs subtracts the addresses as ints (see the sort test).
    expect(dp.ipvsadm('-L -n').stdout).toBe(HEAD +
      'TCP  198.18.0.100:80 sh (sh-fallback,sh-port) persistent 120 mask 255.255.255.0\n' +
      '  -> 198.18.1.1:80                Route   1      0          0         \n' +
      '  -> 198.18.1.2:80                Tunnel  0      0          0         \n' +
      'TCP  198.18.0.102:443 lc (flag-3)\n' +
      '  -> 198.18.0.254:443             Local   4      0          0         \n' +
      'TCP  198.18.0.103:0 wlc persistent 360\n' +
      'TCP  10.96.0.10:53 rr\n' +
      '  -> 10.244.1.3:5353              Masq    5      0          0         \n' +
      '  -> 10.244.2.7:53                Masq    1      0          0         \n' +
      'UDP  10.96.0.10:53 wrr ops\n' +
      '  -> 10.244.1.3:5353              Masq    2      0          0         \n' +
      'SCTP 198.18.0.101:3868 mh (mh-port)\n' +
      '  -> 198.18.1.9:3868              Masq    65535  0          0         \n' +
      'FWM  42 dh\n' +
      '  -> 198.18.1.5:0                 Route   1      0          0         \n');
    // -L with one service: no version header.
    expect(dp.ipvsadm('-L -n -u 10.96.0.10:53').stdout).toBe(HEAD.slice(HEAD.indexOf('\n') + 1) +
      'UDP  10.96.0.10:53 wrr ops\n' +
      '  -> 10.244.1.3:5353              Masq    2      0          0         \n');
  });

  it('prints IPv6 services and destinations in brackets, unpadded past the column', async () => {
    const dp = await fresh();
    ok(dp,
      '-A -t [fd00:10:96::1]:443 -s rr -p 60 -M 64',
      '-a -t [fd00:10:96::1]:443 -r [fd00:10:244:1::5]:6443 -m -w 1',
      '-a -t [fd00:10:96::1]:443 -r [fd00:10:244:1:0:0:0:10]:6443 -m -w 2',
      '-A -f 9 -6 -s rr',
      '-a -f 9 -6 -r fd00::9 -g');
    expect(dp.ipvsadm('-L -n').stdout).toBe(HEAD +
      'TCP  [fd00:10:96::1]:443 rr persistent 60 mask 64\n' +
      '  -> [fd00:10:244:1::5]:6443      Masq    1      0          0         \n' +
      '  -> [fd00:10:244:1::10]:6443     Masq    2      0          0         \n' +
      'FWM  9 IPv6 rr\n' +
      '  -> [fd00::9]:0                  Route   1      0          0         \n');
  });

  it('sorts as libipvs does (fwmark, family, protocol, address as a wrapping int, port); --nosort keeps kernel order', async () => {
    const dp = await fresh();
    ok(dp, '-A -t 10.0.0.1:80', '-A -t 198.18.0.1:80', '-A -t 10.0.0.1:8', '-A -u 10.0.0.1:80', '-A -f 3', '-A -f 1');
    const names = (out: string) => out.split('\n').filter((l) => /^(TCP|UDP|FWM)/.test(l)).map((l) => l.replace(/ wlc$/, ''));
    // 198.18.0.1 - 10.0.0.1 exceeds 2^31, so the C comparator sorts 198.18.0.1 first.
    expect(names(dp.ipvsadm('-L -n').stdout)).toEqual(
      ['TCP  198.18.0.1:80', 'TCP  10.0.0.1:8', 'TCP  10.0.0.1:80', 'UDP  10.0.0.1:80', 'FWM  1', 'FWM  3']);
    expect(names(dp.ipvsadm('-L -n --nosort').stdout)).toEqual(
      ['TCP  10.0.0.1:80', 'TCP  198.18.0.1:80', 'TCP  10.0.0.1:8', 'UDP  10.0.0.1:80', 'FWM  3', 'FWM  1']);
  });

  it('prints --thresholds and --persistent-conn columns', async () => {
    const dp = await fresh();
    ok(dp, '-A -t 198.18.0.100:80 -s wlc -p 30', '-a -t 198.18.0.100:80 -r 198.18.1.1:8080 -m -w 3 -x 100 -y 10');
    const t = '  -> RemoteAddress:Port\n';
    expect(dp.ipvsadm('-L -n --thresholds').stdout).toBe(
      'IP Virtual Server version 1.2.1 (size=4096)\n' +
      'Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n' + t +
      'TCP  198.18.0.100:80 wlc persistent 30\n' +
      '  -> 198.18.1.1:8080              100        10         0          0         \n');
    dp.process(buildPacket({ src: '198.18.2.1', dst: '198.18.0.100', proto: 'tcp', sport: 5000, dport: 80, flags: 'S' }), 1000);
    const d = dp.ipvs().services()[0]!.destinations[0]!;
    expect(dp.ipvsadm('-L -n --persistent-conn').stdout).toBe(
      'IP Virtual Server version 1.2.1 (size=4096)\n' +
      'Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n' + t +
      'TCP  198.18.0.100:80 wlc persistent 30\n' +
      // Active/inactive as the core counts them (their split is the core's business, not the format's).
      `  -> 198.18.1.1:8080              3         1           ${String(d.activeConns).padEnd(10)} ${String(d.inactConns).padEnd(10)}\n`);
    expect(d.activeConns + d.inactConns).toBe(1);
  });
});

describe('ipvsadm --stats, --rate and -c from real packets', () => {
  const syn = (i: number) => buildPacket({ src: '198.18.2.1', dst: '198.18.0.100', proto: 'tcp', sport: 6000 + i, dport: 80, flags: 'S' });

  it('counts connections, packets and bytes per service and destination', async () => {
    const dp = await fresh();
    ok(dp, '-A -t 198.18.0.100:80 -s rr', '-a -t 198.18.0.100:80 -r 198.18.1.1:8080 -m', '-a -t 198.18.0.100:80 -r 198.18.1.2:8080 -m');
    const len = syn(0).length;
    dp.ipvs().tick(0);   // arms the estimator: its first interval ends at 2000
    for (let i = 0; i < 40; i++) expect(dp.process(syn(i), 100 + i).verdict).toBe('FORWARD');
    // One reply, from whichever server got the first connection.
    const first = dp.ipvs().connections(200).find((c) => c.clientPort === 6000)!;
    const reply = buildPacket({ src: first.destination, dst: '198.18.2.1', proto: 'tcp', sport: 8080, dport: 6000, flags: 'SA' });
    dp.process(reply, 150);
    const p = (n: number) => String(n).padStart(9);
    const other = first.destination === '198.18.1.1' ? '198.18.1.2' : '198.18.1.1';
    const rows = new Map([
      [first.destination, `  -> ${`${first.destination}:8080`.padEnd(28)}${p(20)}${p(20)}${p(1)}${p(20 * len)}${p(reply.length)}\n`],
      [other, `  -> ${`${other}:8080`.padEnd(28)}${p(20)}${p(20)}${p(0)}${p(20 * len)}${p(0)}\n`],
    ]);
    expect(dp.ipvsadm('-L -n --stats').stdout).toBe(
      'IP Virtual Server version 1.2.1 (size=4096)\n' +
      'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n' +
      '  -> RemoteAddress:Port\n' +
      `${'TCP  198.18.0.100:80'.padEnd(33)}${p(40)}${p(40)}${p(1)}${p(40 * len)}${p(reply.length)}\n` +
      rows.get('198.18.1.1')! + rows.get('198.18.1.2')!);

    // The estimator (ip_vs_est.c): one 2 s tick moves each rate a quarter of the way to the
    // interval's rate: 40 conns / 2 s = 20/s → 5, and the same for bytes in fixed point.
    dp.ipvs().tick(2000);
    const rate = dp.ipvsadm('-L -n --rate').stdout.split('\n');
    expect(rate[1]).toBe('Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS');
    const bps = (bytes: number) => ((((bytes << 4) >> 2) + 0xf) >> 5);   // ip_vs_read_estimator
    expect(rate[3]).toBe(`${'TCP  198.18.0.100:80'.padEnd(33)}${p(5)}${p(5)}${p(0)}${p(bps(40 * len))}${p(bps(reply.length))}`);
    expect(bps(40 * len)).toBeGreaterThan(0);

    // --exact only matters past 100 million; -Z zeroes the counters.
    expect(dp.ipvsadm('-L -n --stats --exact').stdout).toBe(dp.ipvsadm('-L -n --stats').stdout);
    ok(dp, '-Z -t 198.18.0.100:80');
    expect(dp.ipvsadm('-L -n --stats').stdout.split('\n')[3]).toBe(`${'TCP  198.18.0.100:80'.padEnd(33)}${p(0).repeat(5)}`);
  });

  it('lists connections with -c as /proc/net/ip_vs_conn reads back', async () => {
    const dp = await fresh();
    ok(dp, '-A -t 198.18.0.100:80 -s rr -p 100', '-a -t 198.18.0.100:80 -r 198.18.1.1:8080 -m',
      '-A -u [fd00::100]:53 -s rr', '-a -u [fd00::100]:53 -r [fd00::7]:5353 -m');
    dp.process(syn(1), 5000);
    dp.process(buildPacket({ src: 'fd00::2', dst: 'fd00::100', proto: 'udp', sport: 3333, dport: 53 }), 5000);
    const adm = new Ipvsadm(dp.ipvs());
    const out = adm.run('-L -c -n', 5000).stdout.split('\n');
    expect(out.slice(0, 2)).toEqual(['IPVS connection entries',
      'pro expire state       source             virtual            destination']);
    // Sort: the table's order is not part of the format.
    expect(out.slice(2, -1).sort()).toEqual([
      // The persistence template (client port 0, state NONE, the service's 100 s; ip_vs_core.c
      // ip_vs_sched_persist keeps the virtual port of a non-zero-port service).
      'TCP 01:40  NONE        198.18.2.1:0       198.18.0.100:80    198.18.1.1:8080',
      // SYN_RECV (ip_vs_proto_tcp.c: 60 s).
      'TCP 01:00  SYN_RECV    198.18.2.1:6001    198.18.0.100:80    198.18.1.1:8080',
      // UDP (ip_vs_proto_udp.c: 300 s).
      'UDP 05:00  UDP         [fd00::2]:3333     [fd00::100]:53     [fd00::7]:5353',
    ].sort());
    // 1.5 s later the SYN_RECV entry shows 58 s left (whole seconds, rounded down).
    expect(adm.run('-Lcn', 5000 + 1500).stdout).toContain('TCP 00:58  SYN_RECV ');
    // A tunnel may cross families: the real server prints in its own (ip_vs_conn_seq_show, daf).
    ok(dp, '-A -u [fd00::101]:53 -s rr', '-a -u [fd00::101]:53 -r 198.18.1.7 -i', '-A -u 198.18.0.101:53 -s rr', '-a -u 198.18.0.101:53 -r [fd00::7]:53 -i');
    dp.process(buildPacket({ src: 'fd00::2', dst: 'fd00::101', proto: 'udp', sport: 3334, dport: 53 }), 5000);
    dp.process(buildPacket({ src: '198.18.2.1', dst: '198.18.0.101', proto: 'udp', sport: 3335, dport: 53 }), 5000);
    const crossed = adm.run('-Lcn', 5000).stdout;
    expect(crossed).toContain('UDP 05:00  UDP         [fd00::2]:3334     [fd00::101]:53     198.18.1.7:53\n');
    expect(crossed).toContain('UDP 05:00  UDP         198.18.2.1:3335    198.18.0.101:53    [fd00::7]:53\n');
    // The persistent-conn header adds the persistence-engine columns.
    expect(dp.ipvsadm('-L -c -n --persistent-conn').stdout.split('\n')[1]).toBe(
      'pro expire state       source             virtual            destination        pe name          pe_data');
  });
});

describe('print_largenum', () => {
  it('abbreviates past 100 million unless --exact', () => {
    expect(largenum(99999999n, false)).toBe(' 99999999');
    expect(largenum(100000000n, false)).toBe('  100000K');
    expect(largenum(999999999n, false)).toBe('  999999K');
    expect(largenum(1000000000n, false)).toBe('    1000M');
    expect(largenum(123456789012n, false)).toBe('     123G');
    expect(largenum(123456789012345n, false)).toBe('     123T');
    expect(largenum(12345678n, true)).toBe(' 12345678');
    expect(largenum(123456789012n, true)).toBe(' 123456789012');
  });
});

describe('Ipvsadm class', () => {
  it('runs over any IpvsProgram and accepts argv arrays with the program name', async () => {
    const dp = await fresh();
    const adm = new Ipvsadm(dp.ipvs(), { tableSize: 1 << 16 });
    expect(adm.run(['ipvsadm', '-A', '-t', '198.18.0.1:80']).code).toBe(0);
    expect(adm.run(['ipvsadm', '-L', '-n']).stdout.split('\n')[0]).toBe('IP Virtual Server version 1.2.1 (size=65536)');
  });
});
