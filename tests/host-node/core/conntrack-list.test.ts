// Flows listed as the kernel lists its own (/proc/net/nf_conntrack, ct_seq_show()) and selected as
// `conntrack -L` selects them. The lines are checked against the kernel's own, flow for flow, in
// tests/kernel/conntrack-differential.test.ts; here: each protocol's shape from real flows of a
// Dataplane (TCP through a Service, unreplied UDP, ICMP echo, IPv6 in full), and the filter.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';
import { conntrackFilter, conntrackMatches, eventLine, procLine } from '../../../host-node/core/conntrack-list.js';

const VIP = '198.18.96.10';
const EP = '198.18.100.2';
const CLIENT = '198.18.50.1';

async function withFlows(): Promise<Dataplane> {
  // iptables mode: conntrack tracks every packet, as in the kernel.
  const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1', 'fd00:200::1'], seed: 1 });
  dp.iptablesRestore(`*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d ${VIP} -p tcp --dport 80 -j DNAT --to-destination ${EP}:8080\nCOMMIT\n`);
  dp.iptablesRestore('*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n', { family: 6 });
  dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }), 1000);
  dp.process(buildPacket({ src: EP, dst: CLIENT, proto: 'tcp', sport: 8080, dport: 40000, flags: 'SA' }), 1001);
  dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40000, dport: 80, flags: 'A' }), 1002);
  dp.process(buildPacket({ src: CLIENT, dst: '198.18.7.7', proto: 'udp', sport: 5353, dport: 53 }), 1003);
  dp.process(buildPacket({ src: CLIENT, dst: '198.18.7.8', proto: 'icmp', icmp: { type: 8, code: 0, id: 77, seq: 1 } }), 1004);
  dp.process(buildPacket({ src: 'fd00:50::1', dst: 'fd00:7::8', proto: 'udp', sport: 1000, dport: 2000 }), 1005);
  return dp;
}

describe('procLine', () => {
  it('prints each flow as /proc/net/nf_conntrack does', async () => {
    const dp = await withFlows();
    const lines = dp.conntrack(1005).map((e) => procLine(e, 1005)).sort();
    // Seconds left, floored as the kernel's jiffies / HZ: TCP ESTABLISHED 5 days from 2 ms ago,
    // the UDP and ICMP flows 30 s from 2 ms and 1 ms ago, the IPv6 one just now.
    expect(lines).toEqual([
      `ipv4     2 icmp     1 29 src=${CLIENT} dst=198.18.7.8 type=8 code=0 id=77 [UNREPLIED] src=198.18.7.8 dst=${CLIENT} type=0 code=0 id=77 mark=0 zone=0 use=1`,
      `ipv4     2 tcp      6 431999 ESTABLISHED src=${CLIENT} dst=${VIP} sport=40000 dport=80 src=${EP} dst=${CLIENT} sport=8080 dport=40000 [ASSURED] mark=0 zone=0 use=1`,
      `ipv4     2 udp      17 29 src=${CLIENT} dst=198.18.7.7 sport=5353 dport=53 [UNREPLIED] src=198.18.7.7 dst=${CLIENT} sport=53 dport=5353 mark=0 zone=0 use=1`,
      'ipv6     10 udp      17 30 src=fd00:0050:0000:0000:0000:0000:0000:0001 dst=fd00:0007:0000:0000:0000:0000:0000:0008 sport=1000 dport=2000 [UNREPLIED] '
        + 'src=fd00:0007:0000:0000:0000:0000:0000:0008 dst=fd00:0050:0000:0000:0000:0000:0000:0001 sport=2000 dport=1000 mark=0 zone=0 use=1',
    ]);
    // Seconds left count down on the caller's clock, and never below zero.
    const udp = dp.conntrack(1005).find((e) => e.proto === 'udp' && e.family === 4)!;
    expect(procLine(udp, 1005 + 10_500)).toContain(' 17 19 src=');   // 30 s from 1003, at 11505: 19.498 s
    expect(procLine(udp, 1005 + 99_000)).toContain(' 17 0 src=');
  });
});

describe('conntrackFilter / conntrackMatches', () => {
  it('selects as conntrack -L: by family, protocol, either tuple\'s addresses and the original ports', async () => {
    const dp = await withFlows();
    const flows = dp.conntrack(1005);
    const count = (values: Parameters<typeof conntrackFilter>[0]) => flows.filter((e) => conntrackMatches(e, conntrackFilter(values))).length;
    expect(count({})).toBe(4);
    expect(count({ family: 'ipv6' })).toBe(1);
    expect(count({ proto: 'UDP' })).toBe(2);
    expect(count({ src: CLIENT })).toBe(3);
    expect(count({ dst: VIP })).toBe(1);
    expect(count({ replySrc: EP })).toBe(1);
    expect(count({ replyDst: CLIENT })).toBe(3);
    expect(count({ src: 'fd00:50:0::1' })).toBe(1);   // any spelling of the address
    expect(count({ proto: 'tcp', dport: '80' })).toBe(1);
    expect(count({ proto: 'tcp', dport: '81' })).toBe(0);
    expect(count({ proto: 'udp', sport: '5353', dst: '198.18.7.7' })).toBe(1);
    // An IPv4-mapped address is IPv6 to conntrack: it selects no IPv4 flow (and deletes none).
    expect(count({ src: `::ffff:${CLIENT}` })).toBe(0);
    expect(count({ proto: '17' })).toBe(2);
    expect(count({ proto: 'ipv6-icmp' })).toBe(0);
  });

  it('refuses what conntrack -L refuses, naming the option (or the name the caller gives it)', () => {
    expect(() => conntrackFilter({ family: 'inet' })).toThrow('--family: ipv4 or ipv6, not "inet"');
    expect(() => conntrackFilter({ proto: 'gre' })).toThrow('--proto: tcp, udp, sctp, icmp or icmpv6, not "gre"');
    expect(() => conntrackFilter({ src: '10.0.0.300' })).toThrow('--orig-src: not an IP address: "10.0.0.300"');
    expect(() => conntrackFilter({ proto: 'tcp', dport: '70000' })).toThrow('--dport: not a port number: "70000"');
    expect(() => conntrackFilter({ dport: '80' })).toThrow('--dport needs --proto');
    expect(() => conntrackFilter({ replyDst: 'x' }, (f) => f)).toThrow('replyDst: not an IP address');
    // conntrack.c: every address sets the family; two that differ are "mismatched address family".
    expect(() => conntrackFilter({ src: CLIENT, family: 'ipv6' })).toThrow('--orig-src 198.18.50.1: mismatched address family');
    expect(() => conntrackFilter({ src: CLIENT, dst: 'fd00::10' })).toThrow('--orig-dst fd00::10: mismatched address family');
    // Ports belong to the tcp, udp and sctp extensions: with -p icmp conntrack knows no --sport.
    expect(() => conntrackFilter({ proto: 'icmp', sport: '80' })).toThrow('unknown option --sport with --proto icmp');
  });
});

describe('dp.conntrackDelete (conntrack -D)', () => {
  it('deletes the flows the filter selects and returns them as they were; the rest stay; {} deletes all', async () => {
    const dp = await withFlows();
    const gone = dp.conntrackDelete({ proto: 'udp' }, 1005);
    expect(gone.map((e) => `${e.family} ${e.original.dst}`).sort()).toEqual(['4 198.18.7.7', '6 fd00:7::8']);
    expect(dp.conntrack(1005).map((e) => e.proto).sort()).toEqual(['icmp', 'tcp']);
    expect(dp.stats().conntrack_entries).toBe(2);
    expect(dp.conntrackDelete({ proto: 'udp' }, 1005)).toEqual([]);
    expect(dp.conntrackDelete({ family: 4, proto: 'tcp', dst: VIP, dport: 80, replySrc: EP }, 1005)).toHaveLength(1);
    expect(dp.conntrackDelete({}, 1005).map((e) => e.proto)).toEqual(['icmp']);
    expect(dp.conntrack(1005)).toEqual([]);
  });

  it('the next packet of a deleted flow is a new connection: a UDP flow held by a gone endpoint moves to the new one', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], seed: 1 });
    const dnatTo = (ep: string) => dp.iptablesRestore(`*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d ${VIP} -p udp --dport 53 -j DNAT --to-destination ${ep}:53\nCOMMIT\n`);
    // Where the client's query went: its destination after the core.
    const query = (t: number) => decodePacket(dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'udp', sport: 5353, dport: 53 }), t).packet!)!.dst;
    dnatTo(EP);
    expect(query(1000)).toBe(EP);
    dnatTo('198.18.100.3');
    // The flow keeps its endpoint, as in the kernel, until it is deleted.
    expect(query(1001)).toBe(EP);
    expect(dp.conntrackDelete({ proto: 'udp', replySrc: EP }, 1002)).toHaveLength(1);
    expect(query(1003)).toBe('198.18.100.3');
    expect(dp.conntrack(1003).map((e) => e.reply.src)).toEqual(['198.18.100.3']);
  });

  it('a slice of the table at a time: every selected flow once, and where to go on', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], seed: 1 });
    dp.iptablesRestore('*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n');
    for (let i = 0; i < 20; i++) dp.process(buildPacket({ src: CLIENT, dst: '198.18.7.7', proto: i % 2 ? 'tcp' : 'udp', sport: 2000 + i, dport: 53, flags: 'S' }), 1000);
    const sports: number[] = [];
    let from: number | null = 0, slices = 0;
    while (from !== null) {
      const r = dp.conntrackDeleteFrom(from, 3, { proto: 'udp' }, 1000);
      sports.push(...r.flows.map((e) => e.original.sport!));
      from = r.next;
      slices++;
    }
    expect(slices).toBe(7);
    expect(sports.sort()).toEqual(Array.from({ length: 10 }, (_, i) => 2000 + 2 * i));
    expect(dp.conntrack(1000).every((e) => e.proto === 'tcp')).toBe(true);
    expect(dp.conntrack(1000)).toHaveLength(10);
  });

  it('refuses a filter it cannot read, naming the field, and deletes nothing', async () => {
    const dp = await withFlows();
    expect(() => dp.conntrackDelete({ dest: VIP } as never, 1005)).toThrow('unknown field "dest"');
    expect(() => dp.conntrackDelete({ family: 'ipv4' } as never, 1005)).toThrow('family: 4 or 6, not "ipv4"');
    expect(() => dp.conntrackDelete({ proto: 'tcp', dport: '80' } as never, 1005)).toThrow('dport: not a port number: "80"');
    expect(() => dp.conntrackDelete({ dport: 80 }, 1005)).toThrow('dport needs proto');
    expect(() => dp.conntrackDelete({ src: 'nope' }, 1005)).toThrow('src: not an IP address: "nope"');
    expect(() => dp.conntrackDelete('udp' as never, 1005)).toThrow('a conntrack filter is an object');
    // Values JSON cannot print, and names every object has, are refused like any other.
    expect(() => dp.conntrackDelete({ proto: 'tcp', dport: 80n } as never, 1005)).toThrow('dport: not a port number: 80');
    expect(() => dp.conntrackDelete({ src: {} } as never, 1005)).toThrow('src: not a string: {}');
    expect(() => dp.conntrackDelete({ proto: 'constructor' }, 1005)).toThrow('proto: tcp, udp, sctp, icmp or icmpv6, not "constructor"');
    expect(() => dp.conntrackDeleteFrom(-1, 5, {}, 1005)).toThrow('bad slot -1');
    expect(dp.conntrack(1005)).toHaveLength(4);
  });
});

describe('dp.conntrackEvents (conntrack -E)', () => {
  const take = (dp: Dataplane, nowMs: number) => dp.conntrackEventsTake(nowMs).events.map((e) => eventLine(e.kind, e.flow, nowMs, e.stateChanged));
  /** Sends a packet of the client's connection from `sport` to the VIP (or the endpoint's reply). */
  const tcpOf = (dp: Dataplane, sport: number) => (flags: string, reply: boolean, t: number) => dp.process(reply
    ? buildPacket({ src: EP, dst: CLIENT, proto: 'tcp', sport: 8080, dport: sport, flags })
    : buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport, dport: 80, flags }), t);

  it('records nothing until turned on; then NEW as a connection is stored, DESTROY as it goes, as conntrack -E prints them', async () => {
    const dp = await withFlows();
    expect(dp.conntrackEventsTake(1005)).toEqual({ events: [], lost: 0 });
    dp.conntrackEvents(64);
    dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40001, dport: 80, flags: 'S' }), 2000);
    dp.process(buildPacket({ src: 'fd00:50::1', dst: 'fd00:7::8', proto: 'udp', sport: 1001, dport: 2000 }), 2001);
    // A packet of a connection already stored is no event.
    dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40000, dport: 80, flags: 'A' }), 2002);
    expect(take(dp, 2002)).toEqual([
      `    [NEW] tcp      6 120 SYN_SENT src=${CLIENT} dst=${VIP} sport=40001 dport=80 [UNREPLIED] src=${EP} dst=${CLIENT} sport=8080 dport=40001`,
      '    [NEW] udp      17 30 src=fd00:50::1 dst=fd00:7::8 sport=1001 dport=2000 [UNREPLIED] src=fd00:7::8 dst=fd00:50::1 sport=2000 dport=1001',
    ]);
    expect(take(dp, 2002)).toEqual([]);
    // Deleted, flushed and expired: each a DESTROY (the established one keeps its ASSURED), its
    // seconds left as at the last batch before it went (the ACK at 2002 renewed the 5 days).
    expect(dp.conntrackDelete({ proto: 'tcp', sport: 40000 }, 3000)).toHaveLength(1);
    expect(dp.flushService('198.18.7.7', 53, 'UDP')).toBe(1);
    dp.expire(2001 + 31_000);
    const gone = take(dp, 40_000);
    expect(gone).toContain(`[DESTROY] tcp      6 432000 ESTABLISHED src=${CLIENT} dst=${VIP} sport=40000 dport=80 src=${EP} dst=${CLIENT} sport=8080 dport=40000 [ASSURED]`);
    expect(gone.map((l) => l.split(' ').slice(0, 2).join(' ')).sort()).toEqual(['[DESTROY] icmp', '[DESTROY] tcp', '[DESTROY] udp', '[DESTROY] udp', '[DESTROY] udp']);
    expect(gone).toContain('[DESTROY] udp      17 0 src=fd00:50::1 dst=fd00:7::8 sport=1001 dport=2000 [UNREPLIED] src=fd00:7::8 dst=fd00:50::1 sport=2000 dport=1001');
    // The SYN_SENT connection's 120 s are not up: it stays, and is no event.
    expect(gone.some((l) => l.includes('sport=40001'))).toBe(false);
    dp.conntrackEvents(0);
    dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40002, dport: 80, flags: 'S' }), 50_000);
    expect(take(dp, 50_000)).toEqual([]);
  });

  it('UPDATE as a stored connection changes: the handshake\'s states as the kernel reports them, a UDP reply, assured', async () => {
    const dp = await withFlows();
    dp.conntrackEvents(64);
    const at = tcpOf(dp, 40005);
    at('S', false, 2000);
    at('SA', true, 2001);
    at('A', false, 2002);
    at('A', false, 2003);   // no change: no event
    dp.process(buildPacket({ src: '198.18.7.7', dst: CLIENT, proto: 'udp', sport: 53, dport: 5353 }), 2004);
    const tuples = `src=${CLIENT} dst=${VIP} sport=40005 dport=80`;
    const replies = `src=${EP} dst=${CLIENT} sport=8080 dport=40005`;
    expect(take(dp, 2004)).toEqual([
      `    [NEW] tcp      6 120 SYN_SENT ${tuples} [UNREPLIED] ${replies}`,
      ` [UPDATE] tcp      6 60 SYN_RECV ${tuples} ${replies}`,
      ` [UPDATE] tcp      6 432000 ESTABLISHED ${tuples} ${replies} [ASSURED]`,
      ` [UPDATE] udp      17 30 src=${CLIENT} dst=198.18.7.7 sport=5353 dport=53 src=198.18.7.7 dst=${CLIENT} sport=53 dport=5353`,
    ]);
  });

  it('a SYN/ACK answering a SYN the tracker ignored resynchronises it: an UPDATE even though SYN_RECV stays SYN_RECV', async () => {
    // nf_conntrack_tcp_packet(): the ignored SYN's SYN/ACK restarts the tracker from SYN_SENT to
    // SYN_RECV, a state change the kernel reports (IPCT_PROTOINFO); a repeated SYN/ACK with no
    // ignored SYN before it is no event.
    const dp = await withFlows();
    dp.conntrackEvents(64);
    const at = tcpOf(dp, 40006);
    at('S', false, 2000);
    at('SA', true, 2001);
    at('SA', true, 2002);   // SYN_RECV again: nothing changes
    at('S', false, 2003);   // ignored in SYN_RECV
    at('SA', true, 2004);   // answers the ignored SYN: resynchronised
    const tuples = `src=${CLIENT} dst=${VIP} sport=40006 dport=80`;
    const replies = `src=${EP} dst=${CLIENT} sport=8080 dport=40006`;
    expect(take(dp, 2004)).toEqual([
      `    [NEW] tcp      6 120 SYN_SENT ${tuples} [UNREPLIED] ${replies}`,
      ` [UPDATE] tcp      6 60 SYN_RECV ${tuples} ${replies}`,
      ` [UPDATE] tcp      6 60 SYN_RECV ${tuples} ${replies}`,
    ]);
  });

  it('a RST back to an unreplied connection kills it: its DESTROY at once (no UPDATE), and only once', async () => {
    const dp = await withFlows();
    dp.conntrackEvents(64);
    dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40007, dport: 80, flags: 'S' }), 2000);
    dp.process(buildPacket({ src: EP, dst: CLIENT, proto: 'tcp', sport: 8080, dport: 40007, flags: 'RA' }), 2001);
    expect(take(dp, 2001)).toEqual([
      `    [NEW] tcp      6 120 SYN_SENT src=${CLIENT} dst=${VIP} sport=40007 dport=80 [UNREPLIED] src=${EP} dst=${CLIENT} sport=8080 dport=40007`,
      `[DESTROY] tcp      6 0 CLOSE src=${CLIENT} dst=${VIP} sport=40007 dport=80 [UNREPLIED] src=${EP} dst=${CLIENT} sport=8080 dport=40007`,
    ]);
    // The entry goes when next met: no second DESTROY.
    dp.expire(5000);
    expect(dp.conntrack(5000).some((e) => e.original.sport === 40007)).toBe(false);
    expect(take(dp, 5000).filter((l) => l.includes('40007'))).toEqual([]);
  });

  it('a first packet that opens no connection is no event; in direct mode too; a full ring counts what it missed', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], seed: 1 });
    dp.setServices([{ vip: VIP, port: 80, protocol: 'TCP', endpoints: [`${EP}:8080`] }]);
    dp.conntrackEvents(2);
    dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 41000, dport: 80, flags: 'R' }), 1000);
    expect(dp.conntrackEventsTake(1000)).toEqual({ events: [], lost: 0 });
    for (let i = 0; i < 3; i++) dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 41001 + i, dport: 80, flags: 'S' }), 1000);
    const r = dp.conntrackEventsTake(1000);
    expect(r.events.map((e) => `${e.kind} ${e.flow.original.sport} → ${e.flow.reply.src}`)).toEqual([`NEW 41001 → ${EP}`, `NEW 41002 → ${EP}`]);
    expect(r.lost).toBe(1);
    // Turned on again: empty, nothing missed yet.
    dp.conntrackEvents(8);
    expect(dp.conntrackEventsTake(1000)).toEqual({ events: [], lost: 0 });
    expect(() => dp.conntrackEvents(65537)).toThrow('conntrackEvents: bad slots 65537');
    expect(() => dp.conntrackEvents(-1)).toThrow('bad slots -1');
  });
});
