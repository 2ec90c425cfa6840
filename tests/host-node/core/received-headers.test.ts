// Received headers the kernel judges before the rules have their say, against a kernel
// differential's findings (Linux 6.18 in a throwaway node): IPv6 hop-by-hop options checked as
// ip6_parse_tlv() checks them before PREROUTING (the bad ones drop the packet unseen by any rule,
// the good ones pass); No Next Header, which conntrack cannot track (INVALID, never NATed); an
// empty IPv6 payload, which is no jumbogram; later fragments of a datagram with headers after its
// fragment header, which follow the first; and IPv4 source routes, dropped past PREROUTING as
// accept_source_route=0 drops them. Both the iptables engine and the direct service table.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';

const C6 = 'fd00:198:18:100::5', VIP6 = 'fd00:198:18::80', VIP6B = 'fd00:198:18::81', POD6 = 'fd00:198:19:1::10', POD6B = 'fd00:198:19:1::11';
const C4 = '198.18.100.5', VIP4 = '198.18.0.80', POD4 = '198.19.1.10';

/** An extension header of `type` holding `body` after its first two bytes, padded to 8n bytes. */
function ext(type: number, body: number[]): { type: number; raw: Uint8Array } {
  const raw = new Uint8Array(Math.max(8, Math.ceil((2 + body.length) / 8) * 8));
  raw.set(body, 2);
  raw[1] = raw.length / 8 - 1;
  return { type, raw };
}
const padN = (n: number) => [1, n - 2, ...Array(n - 2).fill(0)];

function rules(family: 4 | 6): string {
  const [vip, vip2, pod, pod2, bits] = family === 6 ? [VIP6, VIP6B, `[${POD6}]`, POD6B, 128] : [VIP4, '198.18.0.81', POD4, '198.19.1.11', 32];
  return `*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING\nCOMMIT\n` +
    `*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n` +
    `-A PREROUTING -d ${vip}/${bits} -p udp --dport 80 -j DNAT --to-destination ${pod}:8080\n` +
    `-A PREROUTING -d ${vip2}/${bits} -j DNAT --to-destination ${pod2}\nCOMMIT\n` +
    `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate INVALID\nCOMMIT\n`;
}

async function iptables(family: 4 | 6): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: [family === 6 ? 'fd00:198:18:200::1' : '198.18.200.1'], seed: 1 });
  dp.iptablesRestore(rules(family), { family });
  return dp;
}

async function direct(family: 4 | 6): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: [family === 6 ? 'fd00:198:18:200::1' : '198.18.200.1'], seed: 1 });
  dp.setServices([{ name: 'web', vip: family === 6 ? VIP6 : VIP4, port: 80, protocol: 'UDP', endpoints: [family === 6 ? `[${POD6}]:8080` : `${POD4}:8080`] }]);
  return dp;
}

/** Packets counted by the first rule of raw PREROUTING (every packet the rules saw). */
const seenByRules = (dp: Dataplane, family: 4 | 6) =>
  Number(/\[(\d+):\d+\] -A PREROUTING/.exec(dp.iptablesSave({ family, counters: true, table: 'raw' }))![1]);

const udp6 = (extensions: { type: number; raw: Uint8Array }[], sport = 40000) =>
  buildPacket({ src: C6, dst: VIP6, proto: 'udp', sport, dport: 80, ext: extensions, payload: new Uint8Array(8) } as Parameters<typeof buildPacket>[0]);

describe('IPv6 hop-by-hop options', () => {
  const bad: Record<string, number[]> = {
    'an unknown option whose high bits say discard': [0x5e, 4, 1, 2, 3, 4],
    'an unknown option whose high bits say discard and answer': [0x9e, 2, 0, 0],
    'PadN with a byte that is not 0': [1, 4, 0, 0, 0, 7],
    'more than 7 bytes of padding in a row': [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    'nine options that are not padding': [...Array(9).fill([0x1e, 0]).flat(), ...padN(4)],
    'a router alert of 3 bytes': [5, 3, 0, 0, 0, ...padN(3)],
    'a jumbo option on a packet with a payload length': [0xc2, 4, 0, 1, 0, 0],
    'an option running past the header': [0x1e, 9, 0, 0],
  };
  for (const [what, body] of Object.entries(bad)) {
    it(`drop ${what} before any rule sees it, in both modes`, async () => {
      const [a, b] = [await iptables(6), await direct(6)];
      const pkt = udp6([ext(0, body)]);
      const ra = a.process(pkt, 1000), rb = b.process(pkt, 1000);
      expect([ra.verdict, ra.reason, rb.verdict, rb.reason]).toEqual(['DROP', 'bad_header', 'DROP', 'bad_header']);
      expect(seenByRules(a, 6)).toBe(0);
      expect(a.conntrack()).toEqual([]);
    });
  }

  it('pass well-formed ones — PadN of zeros, a router alert, an unknown option to skip — to the rules and the Service', async () => {
    for (const body of [padN(6), [5, 2, 0, 0, ...padN(2)], [0x1e, 2, 9, 9, ...padN(2)]]) {
      const [a, b] = [await iptables(6), await direct(6)];
      const pkt = udp6([ext(0, body)]);
      for (const dp of [a, b]) {
        const r = dp.process(pkt, 1000);
        expect(r.verdict).toBe('FORWARD');
        expect(decodePacket(r.packet!).dst).toBe(POD6);
      }
      expect(seenByRules(a, 6)).toBe(1);
    }
  });
});

describe('IPv6 headers conntrack and the parser must take as the kernel does', () => {
  it('No Next Header is never tracked: INVALID in the rules, not NATed', async () => {
    const a = await iptables(6);
    const pkt = buildPacket({ src: C6, dst: VIP6B, proto: 59, payload: new Uint8Array(16).fill(0xab) } as Parameters<typeof buildPacket>[0]);
    const r = a.process(pkt, 1000);
    expect(r.ctstate).toBe('INVALID');
    expect(a.conntrack()).toEqual([]);
    expect(r.packet === undefined || decodePacket(r.packet).dst === VIP6B).toBe(true);
    expect(a.iptablesSave({ family: 6, counters: true, table: 'filter' })).toMatch(/\[1:\d+\] -A FORWARD -m conntrack --ctstate INVALID/);
  });

  it('a payload length of 0 without a hop-by-hop header is an empty payload, not a jumbogram', async () => {
    const a = await iptables(6);
    const pkt = buildPacket({ src: C6, dst: VIP6B, proto: 253, payload: new Uint8Array(0) } as Parameters<typeof buildPacket>[0]);
    expect(pkt.length).toBe(40);
    const r = a.process(pkt, 1000);
    expect(r.verdict).toBe('FORWARD');
    expect(decodePacket(r.packet!).dst).toBe(POD6B);
  });

  it('a later fragment follows its first when headers come after the fragment header', async () => {
    const id = 0x1234;
    const whole = buildPacket({ src: C6, dst: VIP6, proto: 'udp', sport: 40001, dport: 80, ext: [{ type: 44, offset: 0, more: false, id }, ext(60, padN(6))], payload: new Uint8Array(64) } as Parameters<typeof buildPacket>[0]);
    // Split after 48 bytes of the fragmentable part (the destination options header, UDP, data).
    const cut = 48, fh = 40, body = whole.subarray(fh + 8);
    const frags = [[0, cut, 1], [cut, body.length, 0]].map(([s, e, more]) => {
      const f = new Uint8Array(fh + 8 + (e! - s!));
      f.set(whole.subarray(0, fh + 8));
      f.set(body.subarray(s!, e!), fh + 8);
      new DataView(f.buffer).setUint16(4, f.length - 40);
      new DataView(f.buffer).setUint16(fh + 2, s! | more!);
      new DataView(f.buffer).setUint32(fh + 4, id);
      return f;
    });
    for (const dp of [await iptables(6), await direct(6)]) {
      const out = frags.map((f, i) => dp.process(f, 1000 + i));
      expect(out.map((r) => r.verdict)).toEqual(['FORWARD', 'FORWARD']);
      expect(out.map((r) => decodePacket(r.packet!).dst)).toEqual([POD6, POD6]);
    }
  });
});

describe('IPv4 source routes', () => {
  for (const [name, type] of [['loose', 131], ['strict', 137]] as const) {
    it(`drop a ${name} source route past PREROUTING (accept_source_route is off), in both modes`, async () => {
      const [a, b] = [await iptables(4), await direct(4)];
      const pkt = buildPacket({ src: C4, dst: VIP4, proto: 'udp', sport: 40002, dport: 80, ipOptions: Uint8Array.of(1, type, 7, 4, 198, 19, 1, 11), payload: new Uint8Array(8) } as Parameters<typeof buildPacket>[0]);
      const ra = a.process(pkt, 1000), rb = b.process(pkt, 1000);
      expect([ra.verdict, ra.reason, rb.verdict, rb.reason]).toEqual(['DROP', 'bad_header', 'DROP', 'bad_header']);
      expect(seenByRules(a, 4)).toBe(1);
      expect(a.conntrack()).toEqual([]);
    });
  }
});
