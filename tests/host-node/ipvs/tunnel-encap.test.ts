// IPVS tunnel mode with GUE and GRE encapsulation (ipvsadm 1.31 --tun-type gue|gre, --tun-port,
// --tun-nocsum|--tun-csum|--tun-remcsum; ip_vs_xmit.c ipvs_gue_encap / ipvs_gre_encap): the bytes
// on the wire, checksums, ipvsadm's option checks, -S / -R and the --tun-info listing.
// Synthetic packets only.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket } from '../../../host-node/core/packet.js';

const NODE = '198.18.0.254';
const VIP = '198.18.0.100';
const RS = '198.18.1.1';

async function director(dest: string) {
  const dp = await Dataplane.create({ nodeIPs: [NODE], seed: 9 });
  expect(dp.ipvsadm(`-A -t ${VIP}:80 -s rr`).code).toBe(0);
  const r = dp.ipvsadm(`-a -t ${VIP}:80 -r ${RS}:80 -i ${dest}`);
  expect([r.code, r.stderr]).toEqual([0, '']);
  return dp;
}

const be16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const ip4 = (b: Uint8Array, at: number) => [...b.subarray(at, at + 4)].join('.');
// RFC 1071 over `bytes` plus extra 16-bit words; a valid checksum sums to 0xFFFF.
function onesSum(bytes: Uint8Array, extra: number[] = []): number {
  let s = extra.reduce((a, w) => a + w, 0);
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

const SYN = () => buildPacket({ src: '198.19.0.7', dst: VIP, proto: 'tcp', sport: 40000, dport: 80, flags: 'S', payload: 'hello' });

describe('IPVS tunnel encapsulation', () => {
  it('GUE: outer IPv4/UDP to the tunnel port, a 4-byte GUE header naming IPIP, the inner packet intact, UDP checksum with --tun-csum', async () => {
    const dp = await director('--tun-type gue --tun-port 6080 --tun-csum');
    const inner = SYN();
    const r = dp.process(inner, 1);
    expect(r.verdict).toBe('FORWARD');
    const p = r.packet!;
    expect(p.length).toBe(20 + 8 + 4 + inner.length);
    expect([p[0], p[9], ip4(p, 12), ip4(p, 16), be16(p, 2)]).toEqual([0x45, 17, NODE, RS, p.length]);
    const udp = p.subarray(20);
    const sport = be16(udp, 0);
    expect(sport).toBeGreaterThanOrEqual(32768);
    expect(sport).toBeLessThan(60999);
    expect([be16(udp, 2), be16(udp, 4)]).toEqual([6080, 8 + 4 + inner.length]);
    expect([...udp.subarray(8, 12)]).toEqual([0, 4, 0, 0]);
    expect([...udp.subarray(12)]).toEqual([...inner]);
    // Pseudo-header (source, destination, protocol 17, UDP length) + UDP segment.
    const pseudo = [be16(p, 12), be16(p, 14), be16(p, 16), be16(p, 18), 17, udp.length];
    expect(be16(udp, 6)).not.toBe(0);
    expect(onesSum(udp, pseudo)).toBe(0xffff);
    // The same flow keeps its source port; the next packet of the connection is encapsulated alike.
    const again = dp.process(buildPacket({ src: '198.19.0.7', dst: VIP, proto: 'tcp', sport: 40000, dport: 80, flags: 'A' }), 2).packet!;
    expect(be16(again, 20)).toBe(sport);
  });

  it('GUE without checksum leaves the UDP checksum 0', async () => {
    const dp = await director('--tun-type gue --tun-port 6080');
    const p = dp.process(SYN(), 1).packet!;
    expect([p[9], be16(p, 20 + 6)]).toEqual([17, 0]);
  });

  it('GRE: protocol 47, a 4-byte header for IPv4 inside; with --tun-csum the checksum flag and a valid checksum', async () => {
    const inner = SYN();
    const plain = (await director('--tun-type gre')).process(inner, 1).packet!;
    expect(plain.length).toBe(20 + 4 + inner.length);
    expect([plain[9], be16(plain, 20), be16(plain, 22)]).toEqual([47, 0x0000, 0x0800]);
    expect([...plain.subarray(24)]).toEqual([...inner]);
    const summed = (await director('--tun-type gre --tun-csum')).process(inner, 1).packet!;
    expect(summed.length).toBe(20 + 8 + inner.length);
    expect([summed[9], be16(summed, 20), be16(summed, 22), be16(summed, 26)]).toEqual([47, 0x8000, 0x0800, 0]);
    expect(onesSum(summed.subarray(20))).toBe(0xffff);
    expect([...summed.subarray(28)]).toEqual([...inner]);
  });

  it('ipvsadm -S prints the tunnel options, -R reads them back, --tun-info lists them', async () => {
    const dp = await Dataplane.create({ nodeIPs: [NODE], seed: 9 });
    const rules = [
      `-A -t ${VIP}:80 -s rr`,
      `-a -t ${VIP}:80 -r 198.18.1.1:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum`,
      `-a -t ${VIP}:80 -r 198.18.1.2:80 -i -w 1 --tun-type gre --tun-nocsum`,
      `-a -t ${VIP}:80 -r 198.18.1.3:80 -i -w 1 --tun-type ipip`,
      `-a -t ${VIP}:80 -r 198.18.1.4:80 -i -w 1 --tun-type gue --tun-port 7000 --tun-remcsum`,
    ];
    expect(dp.ipvsadm('-R', rules.join('\n') + '\n').code).toBe(0);
    const saved = dp.ipvsadm('-S -n').stdout;
    for (const l of rules.slice(1)) expect(saved).toContain(l + '\n');
    const dp2 = await Dataplane.create({ nodeIPs: [NODE], seed: 9 });
    dp2.ipvsadm('-R', saved);
    expect(dp2.ipvsadm('-S -n').stdout).toBe(saved);
    const list = dp.ipvsadm('-L -n --tun-info').stdout;
    expect(list).toContain('  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n');
    expect(list).toMatch(/-> 198\.18\.1\.1:80\s+Tunnel\s+gue:6080:\+c\s+1\s/);
    expect(list).toMatch(/-> 198\.18\.1\.2:80\s+Tunnel\s+gre:-c\s+1\s/);
    expect(list).toMatch(/-> 198\.18\.1\.3:80\s+Tunnel\s+ipip\s+1\s/);
    expect(list).toMatch(/-> 198\.18\.1\.4:80\s+Tunnel\s+gue:7000:r\+c\s+1\s/);
    // -e replaces the tunnel options like the rest of the destination.
    dp.ipvsadm(`-e -t ${VIP}:80 -r 198.18.1.1:80 -i --tun-type gre`);
    expect(dp.ipvsadm('-S -n').stdout).toContain(`-a -t ${VIP}:80 -r 198.18.1.1:80 -i -w 1 --tun-type gre --tun-nocsum\n`);
  });

  it.each([
    ['--tun-type gue', "You need to supply the 'tun-port' option for the 'gue' tunnel type\n"],
    ['--tun-type gre --tun-port 6080', "Illegal 'tun-port' option with the 'gre' tunnel type\n"],
    ['--tun-type gre --tun-remcsum', "Illegal 'tun-remcsum' option with the 'gre' tunnel type\n"],
    ['--tun-type gue --tun-port 6080 --tun-csum --tun-remcsum', "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type\n"],
    ['--tun-type vxlan', 'illegal tunnel type specified\n'],
  ])('refuses -i %s', async (opts, stderr) => {
    const dp = await Dataplane.create({ nodeIPs: [NODE], seed: 9 });
    dp.ipvsadm(`-A -t ${VIP}:80 -s rr`);
    const r = dp.ipvsadm(`-a -t ${VIP}:80 -r ${RS}:80 -i ${opts}`);
    expect([r.code, r.stderr]).toEqual([2, stderr]);
  });
});
