// Snapshot records: a table exported record by record and imported into a fresh core at another
// time is the same table; corrupt records are refused without side effects.
import { describe, it, expect } from 'vitest';
import {
  Ct, T, inv, TCP, UDP, ICMP, ICMPV6, NONE, SYN, ACK, FIN, SEC, MIN, DAY,
  S_ESTABLISHED, S_REPEAT, ASSURED, SEEN_REPLY, CONFIRMED, SNAT, DNAT, ES, FW, CW, LA, TW,
} from './harness';

const T0 = 0x1000;
const T1 = 0xfff0_0000; // restore time, far away and about to wrap

function populate(c: Ct) {
  const tcp: T = { family: 4, proto: TCP, sport: 40000, dport: 80, src: '198.18.0.1', dst: '198.18.100.1' };
  const tcpReply: T = { family: 4, proto: TCP, sport: 8080, dport: 61000, src: '198.18.5.7', dst: '198.18.0.254' };
  const i = c.insert(tcp, tcpReply, T0);
  c.packet(i, 0, SYN, T0);
  c.packet(i, 1, SYN | ACK, T0);
  c.packet(i, 0, ACK, T0);
  c.packet(i, 0, FIN | ACK, T0 + 10); // FIN_WAIT, client closed first
  c.x.ctSetMark(i, 0x4000);
  const u: T = { family: 4, proto: UDP, sport: 5000, dport: 53, src: '198.18.0.2', dst: '198.18.0.53' };
  const j = c.insert(u, undefined, T0);
  c.packet(j, 0, 0, T0);
  c.packet(j, 1, 0, T0 + 1);
  c.packet(j, 0, 0, T0 + 3 * SEC);
  const p: T = { family: 4, proto: ICMP, sport: 9, dport: 9, type: 8, src: '198.18.0.3', dst: '198.18.0.4' };
  const k = c.insert(p, { ...inv(p), type: 0 }, T0);
  c.packet(k, 0, 0, T0);
  const v6: T = { family: 6, proto: ICMPV6, sport: 3, dport: 3, type: 128, src: 'fd00::1', dst: 'fd00::2' };
  const l = c.insert(v6, { ...inv(v6), type: 129, src: 'fd00::9' }, T0);
  c.packet(l, 0, 0, T0);
  const fresh = c.insert({ ...u, sport: 5001 }, undefined, T0); // never saw a packet
  return { i, j, k, l, fresh };
}

function exportAll(c: Ct, now: number): Uint8Array[] {
  const size = c.g('CT_RECORD_SIZE');
  const out: Uint8Array[] = [];
  for (let i = c.x.ctNextUsed(0) >>> 0; i !== NONE; i = c.x.ctNextUsed(i + 1) >>> 0) {
    const n = c.x.ctExportRecord(i, c.core.scratch, now);
    if (n === 0) continue;
    expect(n).toBe(size);
    out.push(c.core.get(c.core.scratch, size));
  }
  return out;
}

function importOne(c: Ct, rec: Uint8Array, now: number): number {
  return c.x.ctImportRecord(c.core.put(rec), now) >>> 0;
}

describe('conntrack snapshot records', () => {
  it('round-trips tuples, TCP state and tracker flags, status, mark and remaining lifetime', () => {
    const a = new Ct(8, 4);
    const ids = populate(a);
    const exportAt = T0 + 5 * SEC;
    const recs = exportAll(a, exportAt);
    expect(recs.length).toBe(5);
    // Documented layout, checked on the TCP record.
    const dv = new DataView(recs[0].buffer);
    expect(recs[0][0]).toBe(1);
    expect(recs[0][1]).toBe(4);
    expect(recs[0][2]).toBe(TCP);
    expect(recs[0][3]).toBe(FW);
    expect(recs[0][6]).toBe(SEEN_REPLY | ASSURED | CONFIRMED | SNAT | DNAT);
    expect(dv.getUint32(8, true)).toBe(0x4000);
    expect(dv.getInt32(12, true)).toBe(2 * MIN - (5 * SEC - 10));
    expect([...recs[0].slice(16, 20)]).toEqual([198, 18, 0, 1]); // network byte order
    expect(dv.getUint16(48, true)).toBe(40000);
    expect([...recs[0].slice(52, 56)]).toEqual([198, 18, 5, 7]);
    expect(dv.getUint16(86, true)).toBe(61000);

    const b = new Ct(6, 2, 99, 98); // another size and seed
    const got: number[] = recs.map((r) => importOne(b, r, T1));
    expect(got).not.toContain(NONE);
    expect(b.count()).toBe(5);
    const pairs: [number, number][] = [[ids.i, got[0]], [ids.j, got[1]], [ids.k, got[2]], [ids.l, got[3]], [ids.fresh, got[4]]];
    for (const [x, y] of pairs) {
      expect(b.orig(y)).toEqual(a.orig(x));
      expect(b.reply(y)).toEqual(a.reply(x));
      expect(b.state(y)).toBe(a.state(x));
      expect(b.status(y)).toBe(a.status(x));
      expect(b.x.ctMark(y)).toBe(a.x.ctMark(x));
      expect(b.left(y, T1)).toBe(a.left(x, exportAt));
      expect(b.lookup(b.orig(y)!, T1)).toBe(y << 1);
      expect(b.lookup(b.reply(y)!, T1)).toBe((y << 1) | 1);
    }
    // The restored TCP entry carries on where it was: FIN_WAIT → CLOSE_WAIT → LAST_ACK → TIME_WAIT,
    // and remembers who closed first so a new SYN in TIME_WAIT reopens.
    const t = got[0];
    expect(b.packet(t, 1, ACK, T1)).toBe(S_ESTABLISHED);
    expect(b.state(t)).toBe(CW);
    b.packet(t, 1, FIN | ACK, T1);
    expect(b.state(t)).toBe(LA);
    b.packet(t, 0, ACK, T1);
    expect(b.state(t)).toBe(TW);
    expect(b.packet(t, 0, SYN, T1 + 1)).toBe(S_REPEAT);
    // The restored UDP stream stays a stream.
    b.packet(got[1], 0, 0, T1 + 100);
    expect(b.left(got[1], T1 + 100)).toBe(120 * SEC);
    expect(b.status(got[1]) & ASSURED).toBe(ASSURED);
  });

  it('skips free and expired slots on export', () => {
    const a = new Ct(6, 2);
    const { j } = populate(a);
    expect(a.x.ctExportRecord(63, a.core.scratch, T0)).toBe(0);
    expect(a.x.ctExportRecord(1 << 20, a.core.scratch, T0)).toBe(0);
    // At T0 + 3 s + 120 s the UDP stream's time is up, others (TCP FIN_WAIT 120 s from T0+10) too.
    expect(a.x.ctExportRecord(j, a.core.scratch, T0 + 3 * SEC + 120 * SEC)).toBe(0);
    expect(exportAll(a, T0 + 10 * DAY).length).toBe(0);
  });

  it('refuses corrupt records, changing nothing', () => {
    const a = new Ct(8, 4);
    populate(a);
    const recs = exportAll(a, T0 + 5 * SEC);
    const [tcp, udp, icmp, icmp6] = recs;
    const b = new Ct(8, 4);
    const bad: [string, Uint8Array, (r: Uint8Array, dv: DataView) => void][] = [
      ['version', tcp, (r) => (r[0] = 2)],
      ['family 0', tcp, (r) => (r[1] = 0)],
      ['family 5', tcp, (r) => (r[1] = 5)],
      ['IPv4 record claiming IPv6 with v4-sized padding ok but ICMP over v6', icmp, (r) => (r[1] = 6)],
      ['ICMPv6 over IPv4', icmp6, (r) => (r[1] = 4)],
      ['TCP state 10', tcp, (r) => (r[3] = 10)],
      ['TCP state 255', tcp, (r) => (r[3] = 255)],
      ['TCP last index 6', tcp, (r) => (r[7] = (r[7] & 0x1f) | (6 << 5))],
      ['UDP with a TCP state', udp, (r) => (r[3] = ES)],
      ['UDP with tracker flags', udp, (r) => (r[7] = 1)],
      ['ICMP type on UDP', udp, (r) => (r[4] = 8)],
      ['ICMP reply type not the inverse', icmp, (r) => (r[5] = 8)],
      ['ICMP echo reply as original', icmp, (r) => { r[4] = 0; r[5] = 8; }],
      ['ICMP error type', icmp, (r) => { r[4] = 3; r[5] = 3; }],
      ['unknown status bit 0', tcp, (r) => (r[6] |= 1)],
      ['unknown status bit 6', tcp, (r) => (r[6] |= 0x40)],
      ['internal status bit 7', udp, (r) => (r[6] |= 0x80)],
      ['NAT bits contradict tuples', tcp, (r) => (r[6] &= ~SNAT)],
      ['NAT bits on un-NATed flow', udp, (r) => (r[6] |= DNAT)],
      ['zero lifetime', tcp, (_r, dv) => dv.setInt32(12, 0, true)],
      ['negative lifetime', tcp, (_r, dv) => dv.setInt32(12, -5, true)],
      ['IPv4 padding word', tcp, (_r, dv) => dv.setUint32(20, 1, true)],
      ['IPv4 reply padding word', udp, (_r, dv) => dv.setUint32(80, 7, true)],
    ];
    for (const [what, base, corrupt] of bad) {
      const r = base.slice();
      corrupt(r, new DataView(r.buffer));
      expect(importOne(b, r, T1), what).toBe(NONE);
    }
    expect(b.count()).toBe(0);
    expect(b.stat('BAD_ARG')).toBe(bad.length);
    expect(b.stat('INSERTS')).toBe(0);
    // The originals still import, once; a second copy clashes.
    for (const r of recs) expect(importOne(b, r, T1)).not.toBe(NONE);
    expect(importOne(b, tcp, T1)).toBe(NONE);
    expect(b.stat('CLASH')).toBe(1);
  });
});
