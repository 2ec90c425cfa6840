// Non-TCP tracking: UDP unreplied vs stream timeouts and ASSURED, SCTP and generic protocols,
// ICMP/ICMPv6 echo pairing through the inverted tuple, and ICMP errors finding their connection.
import { describe, it, expect } from 'vitest';
import {
  Ct, T, inv, UDP, SCTP, ICMP, ICMPV6, GRE, TCP, NONE,
  S_NEW, S_ESTABLISHED, S_INVALID, SEEN_REPLY, ASSURED, CONFIRMED, SEC, MIN,
} from './harness';

const T0 = 0xffff_ff00;
const at = (ms: number) => (T0 + ms) >>> 0;
const dns: T = { family: 4, proto: UDP, sport: 33333, dport: 53, src: '198.18.0.5', dst: '198.18.0.53' };

describe('conntrack UDP', () => {
  it('unreplied: 30 s, refreshed by each packet, NEW until a reply', () => {
    const c = new Ct();
    const i = c.insert(dns, undefined, at(0));
    expect(c.left(i, at(0))).toBe(30 * SEC);
    expect(c.packet(i, 0, 0, at(0))).toBe(S_NEW);
    expect(c.packet(i, 0, 0, at(10 * SEC))).toBe(S_NEW);
    expect(c.left(i, at(10 * SEC))).toBe(30 * SEC);
    expect(c.status(i)).toBe(CONFIRMED);
    expect(c.lookup(dns, at(40 * SEC - 1))).toBe(i << 1);
    expect(c.lookup(dns, at(40 * SEC))).toBe(NONE);
  });

  it('a quick request/response stays short-lived and not assured', () => {
    const c = new Ct();
    const i = c.insert(dns, undefined, at(0));
    c.packet(i, 0, 0, at(0));
    expect(c.packet(i, 1, 0, at(5))).toBe(S_ESTABLISHED);
    expect(c.left(i, at(5))).toBe(30 * SEC);
    expect(c.status(i) & (SEEN_REPLY | ASSURED)).toBe(SEEN_REPLY);
    expect(c.packet(i, 0, 0, at(1000))).toBe(S_ESTABLISHED); // within 2 s of the first packet
    expect(c.left(i, at(1000))).toBe(30 * SEC);
    expect(c.status(i) & ASSURED).toBe(0);
  });

  it('seen both ways and still active after 2 s: stream, 120 s, ASSURED', () => {
    const c = new Ct();
    const i = c.insert(dns, undefined, at(0));
    c.packet(i, 0, 0, at(0));
    c.packet(i, 1, 0, at(100));
    expect(c.packet(i, 1, 0, at(2000))).toBe(S_ESTABLISHED); // exactly 2 s: not after it yet
    expect(c.left(i, at(2000))).toBe(30 * SEC);
    expect(c.packet(i, 0, 0, at(2001))).toBe(S_ESTABLISHED);
    expect(c.left(i, at(2001))).toBe(120 * SEC);
    expect(c.status(i) & ASSURED).toBe(ASSURED);
    expect(c.lookup(inv(dns), at(2001 + 120 * SEC - 1))).toBe((i << 1) | 1);
    expect(c.lookup(inv(dns), at(2001 + 120 * SEC))).toBe(NONE);
  });

  it('a reply that comes late gets the unreplied timeout itself; the next packet makes it a stream', () => {
    const c = new Ct();
    const i = c.insert(dns, undefined, at(0));
    c.packet(i, 0, 0, at(0));
    c.packet(i, 1, 0, at(5 * SEC));
    expect(c.left(i, at(5 * SEC))).toBe(30 * SEC);
    expect(c.status(i) & ASSURED).toBe(0);
    c.packet(i, 0, 0, at(6 * SEC));
    expect(c.left(i, at(6 * SEC))).toBe(120 * SEC);
    expect(c.status(i) & ASSURED).toBe(ASSURED);
  });

  it('a stream keeps its stream timeout weeks later (no wrap of the stream time)', () => {
    const c = new Ct();
    const i = c.insert(dns, undefined, at(0));
    c.packet(i, 0, 0, at(0));
    c.packet(i, 1, 0, at(1));
    let now = at(3000);
    for (let k = 0; k < 40; k++) {
      c.packet(i, k & 1, 0, now);
      expect(c.left(i, now)).toBe(120 * SEC);
      now = (now + 100 * SEC) >>> 0;
    }
    // 26 days of 100 s steps would take too long; jump in steps just under the timeout instead.
    c.x.ctSetTimeout(c.g('CT_TO_UDP_STREAM'), 20 * 24 * 3600 * SEC);
    for (let k = 0; k < 4; k++) {
      now = (now + 19 * 24 * 3600 * SEC) >>> 0;
      c.packet(i, 0, 0, now);
      expect(c.left(i, now)).toBe(20 * 24 * 3600 * SEC);
    }
  });

  it('the UDP timeouts are configurable', () => {
    const c = new Ct();
    c.x.ctSetTimeout(c.g('CT_TO_UDP_UNREPLIED'), 7 * SEC);
    c.x.ctSetTimeout(c.g('CT_TO_UDP_STREAM'), 9 * MIN);
    const i = c.insert(dns, undefined, at(0));
    expect(c.left(i, at(0))).toBe(7 * SEC);
    c.packet(i, 0, 0, at(0));
    c.packet(i, 1, 0, at(1));
    c.packet(i, 1, 0, at(2500));
    expect(c.left(i, at(2500))).toBe(9 * MIN);
  });
});

describe('conntrack SCTP and other protocols', () => {
  it('SCTP is tracked like a UDP stream with its own timeouts (30 s, then 210 s)', () => {
    const c = new Ct();
    const s: T = { ...dns, proto: SCTP, dport: 38412 };
    const i = c.insert(s, undefined, at(0));
    expect(c.packet(i, 0, 0, at(0))).toBe(S_NEW);
    expect(c.left(i, at(0))).toBe(30 * SEC);
    c.packet(i, 1, 0, at(10));
    c.packet(i, 0, 0, at(3000));
    expect(c.left(i, at(3000))).toBe(210 * SEC);
    expect(c.status(i) & ASSURED).toBe(ASSURED);
  });

  it('other protocols get the generic 600 s and never become assured', () => {
    const c = new Ct();
    const g: T = { family: 4, proto: GRE, sport: 0, dport: 0, src: '198.18.0.1', dst: '198.18.0.2' };
    const i = c.insert(g, undefined, at(0));
    expect(c.packet(i, 0, 0, at(0))).toBe(S_NEW);
    expect(c.left(i, at(0))).toBe(600 * SEC);
    expect(c.packet(i, 1, 0, at(1))).toBe(S_ESTABLISHED);
    expect(c.packet(i, 0, 0, at(5000))).toBe(S_ESTABLISHED);
    expect(c.left(i, at(5000))).toBe(600 * SEC);
    expect(c.status(i) & ASSURED).toBe(0);
    expect(c.state(i)).toBe(0);
  });
});

describe('conntrack ICMP', () => {
  const ping: T = { family: 4, proto: ICMP, sport: 0x1234, dport: 0x1234, type: 8, src: '198.18.0.5', dst: '198.18.7.7' };

  function invert(c: Ct, t: T): T | null {
    const p = c.put(t, 0), out = c.x.tupleAt(1);
    return c.x.ctInvertTuple(out, p) ? c.read(out) : null;
  }

  it('inverts like the kernel: echo 8↔0, timestamp, info, mask; ICMPv6 128↔129, 139↔140; none for errors', () => {
    const c = new Ct();
    const pairs: [number, number, number][] = [
      [ICMP, 8, 0], [ICMP, 0, 8], [ICMP, 13, 14], [ICMP, 14, 13], [ICMP, 15, 16], [ICMP, 16, 15],
      [ICMP, 17, 18], [ICMP, 18, 17], [ICMPV6, 128, 129], [ICMPV6, 129, 128], [ICMPV6, 139, 140], [ICMPV6, 140, 139],
    ];
    for (const [proto, type, want] of pairs) {
      const t: T = proto === ICMP ? { ...ping, type } : { ...ping, family: 6, proto, type, src: 'fd00::5', dst: 'fd00::7' };
      const r = invert(c, t)!;
      expect(r.type, `${proto}/${type}`).toBe(want);
      expect(r.sport).toBe(0x1234);
      expect(r.dport).toBe(0x1234);
      expect(c.read(c.put(t, 2)).src).toBe(r.dst);
    }
    for (const type of [3, 5, 11, 12, 9, 10]) expect(invert(c, { ...ping, type })).toBeNull();
    expect(invert(c, { ...ping, family: 6, proto: ICMPV6, type: 1, src: '::1', dst: '::2' })).toBeNull();
    // TCP: ports swap, type stays 0; in place works too.
    const tcp: T = { family: 4, proto: TCP, sport: 1, dport: 2, src: '198.18.0.1', dst: '198.18.0.2' };
    const p = c.put(tcp, 0);
    expect(c.x.ctInvertTuple(p, p)).toBe(1);
    expect(c.read(p)).toEqual({ ...inv(tcp), type: 0 });
  });

  it('echo request and reply are one connection; the reply is found through the inverted type', () => {
    const c = new Ct();
    const reply = invert(c, ping)!;
    const i = c.insert(ping, reply, at(0));
    expect(c.packet(i, 0, 0, at(0))).toBe(S_NEW);
    expect(c.left(i, at(0))).toBe(30 * SEC);
    expect(c.lookup(reply, at(10))).toBe((i << 1) | 1);
    expect(c.lookup({ ...reply, type: 8 }, at(10))).toBe(NONE); // a request from the other side is another flow
    expect(c.lookup({ ...ping, type: 0 }, at(10))).toBe(NONE);
    expect(c.packet(i, 1, 0, at(10))).toBe(S_ESTABLISHED);
    expect(c.packet(i, 0, 0, at(1000))).toBe(S_ESTABLISHED);
    expect(c.reply(i)!.type).toBe(0);
    expect(c.orig(i)!.type).toBe(8);
    expect(c.lookup(ping, at(1000 + 30 * SEC))).toBe(NONE);
  });

  it('an echo reply cannot open a connection: INVALID and the entry goes', () => {
    const c = new Ct();
    const stray = { ...ping, type: 0 };
    const i = c.insert(stray, invert(c, stray)!, at(0));
    expect(c.packet(i, 0, 0, at(0))).toBe(S_INVALID);
    expect(c.lookup(stray, at(0))).toBe(NONE);
    expect(c.stat('INVALID')).toBe(1);
  });

  it('ICMPv6 echo pairs the same way with its own timeout', () => {
    const c = new Ct(10, 4);
    c.x.ctSetTimeout(c.g('CT_TO_ICMPV6'), 12 * SEC);
    const p6: T = { family: 6, proto: ICMPV6, sport: 77, dport: 77, type: 128, src: 'fd00::5', dst: 'fd00::7' };
    const r6 = invert(c, p6)!;
    expect(r6.type).toBe(129);
    const i = c.insert(p6, r6, at(0));
    expect(c.packet(i, 0, 0, at(0))).toBe(S_NEW);
    expect(c.left(i, at(0))).toBe(12 * SEC);
    expect(c.lookup(r6, at(1))).toBe((i << 1) | 1);
    expect(c.packet(i, 1, 0, at(1))).toBe(S_ESTABLISHED);
  });

  it('an ICMP error finds the connection its quoted header belongs to (RELATED), checked against the outer destination', () => {
    const c = new Ct();
    // client 198.18.0.5:40000 → VIP 198.18.100.1:53, DNAT to pod 198.18.5.7:5353
    const orig: T = { family: 4, proto: UDP, sport: 40000, dport: 53, src: '198.18.0.5', dst: '198.18.100.1' };
    const reply: T = { family: 4, proto: UDP, sport: 5353, dport: 40000, src: '198.18.5.7', dst: '198.18.0.5' };
    const i = c.insert(orig, reply, at(0));
    c.packet(i, 0, 0, at(0));
    // The pod's host answers port unreachable to the client, quoting client → pod.
    const quoted: T = { family: 4, proto: UDP, sport: 40000, dport: 5353, src: '198.18.0.5', dst: '198.18.5.7' };
    const outer: T = { family: 4, proto: ICMP, sport: 0, dport: 0, type: 3, src: '198.18.5.7', dst: '198.18.0.5' };
    const rel = (q: T, o: T) => c.x.ctLookupRelated(c.put(q, 0), c.put(o, 1), at(5)) >>> 0;
    expect(rel(quoted, outer)).toBe((i << 1) | 1);
    expect(rel(quoted, { ...outer, dst: '198.18.0.6' })).toBe(NONE); // bogus: error sent elsewhere
    expect(rel({ ...quoted, sport: 40001 }, outer)).toBe(NONE);
    // An error travelling the original way quotes the reply-direction packet.
    const quotedBack: T = { family: 4, proto: UDP, sport: 53, dport: 40000, src: '198.18.100.1', dst: '198.18.0.5' };
    expect(rel(quotedBack, { ...outer, src: '198.18.0.5', dst: '198.18.100.1' })).toBe(i << 1);
    // A quoted echo request finds its echo connection through the inverted type.
    const reqReply = invert(c, ping)!;
    const e = c.insert(ping, reqReply, at(0));
    c.packet(e, 0, 0, at(0));
    expect(rel(ping, { ...outer, src: '198.18.7.7', dst: ping.src })).toBe((e << 1) | 1);
  });
});
