// The table itself: sizing and bytes per flow, lookups from both ends (with and without NAT),
// IPv6 through the side table, clashes and bad arguments, deletion, and early drop when full.
import { describe, it, expect } from 'vitest';
import {
  Ct, T, inv, key, TCP, UDP, NONE, ACK, SYN, S_NEW, S_ESTABLISHED, SEEN_REPLY, ASSURED, SNAT, DNAT,
  SEC,
} from './harness';

const T0 = 0x7fff_fff0; // crosses the i32 sign boundary
const client: T = { family: 4, proto: TCP, sport: 51000, dport: 443, src: '198.18.1.10', dst: '198.18.9.1' };

describe('conntrack table: sizing', () => {
  it('stays within 64 bytes per IPv4 flow at 2^20 connections, buckets included', () => {
    const c = new Ct(20, 0);
    expect(c.x.ctCapacity() >>> 0).toBe(1 << 20);
    const bytes = c.x.ctBytes() >>> 0;
    const perFlow = bytes / (1 << 20);
    console.log(`conntrack: ${bytes} bytes for 2^20 flows = ${perFlow.toFixed(3)} bytes/flow (IPv4)`);
    expect(perFlow).toBeLessThanOrEqual(64);
    expect(c.g('ENTRY_SIZE')).toBeLessThanOrEqual(56);
  });

  it('an IPv6 flow costs the entry, its buckets and one 64-byte side slot', () => {
    const c = new Ct(16, 16);
    const perFlow = (c.x.ctBytes() >>> 0) / (1 << 16);
    console.log(`conntrack: ${perFlow.toFixed(3)} bytes/flow when every flow may be IPv6`);
    expect(Math.floor(perFlow)).toBe(c.g('ENTRY_SIZE') + 8 + c.g('SIDE_SIZE'));
  });

  it('makes every new table zero, on fresh memory (not written) and on memory the allocator reuses', () => {
    const c = new Ct(18, 0);
    expect(c.x.entriesAllZero()).toBe(1);
    // A table freed and made again, with dirty memory freed in between, lands on reused memory.
    for (const log2 of [17, 18, 16]) {
      c.x.dirtyFree(12 << 20);
      expect(c.init(log2, 0)).toBe(true);
      expect(c.x.entriesAllZero(), `2^${log2}`).toBe(1);
    }
  });

  it('warming writes only storage no connection has used: every flow, count and free slot stays', () => {
    const c = new Ct(8, 4);
    const es = c.g('ENTRY_SIZE'), ss = c.g('SIDE_SIZE');
    const flows: T[] = [];
    for (let k = 0; k < 6; k++) flows.push({ ...client, sport: 52000 + k });
    for (let k = 0; k < 2; k++) flows.push({ family: 6, proto: UDP, sport: 5300 + k, dport: 53, src: 'fd00::7', dst: 'fd00::53' });
    const ids = flows.map((f) => c.insert(f, undefined, T0));
    expect(ids.every((i) => i !== NONE)).toBe(true);
    c.x.ctDelete(ids[2]!);   // a slot on the free list, linked through its own words
    const total = (256 - 8) * es + (16 - 2) * ss;
    expect(c.x.warmStorage(100) >>> 0).toBe(total - 100);
    // Flows taken between steps, past where warming got to (the freed slot first, then slots 8 to
    // 11, beyond the 100 bytes after slot 8): warming goes on after them and never writes them.
    const late = [0, 1, 2, 3, 4].map((k) => ({ ...client, sport: 53000 + k }));
    const lateIds = late.map((f) => c.insert(f, undefined, T0));
    expect(lateIds).toEqual([ids[2], 8, 9, 10, 11]);
    let left = c.x.warmStorage(1000) >>> 0;
    expect(left).toBe(total - 4 * es - 1000);
    while (left > 0) left = c.x.warmStorage(4096) >>> 0;
    expect(c.x.warmStorage(4096) >>> 0).toBe(0);
    expect(c.count()).toBe(flows.length - 1 + late.length);
    const live = flows.filter((_, k) => k !== 2).concat(late);
    const liveIds = ids.filter((_, k) => k !== 2).concat(lateIds);
    live.forEach((f, k) => {
      expect(c.lookup(f, T0), key(f)).toBe(liveIds[k]! << 1);
      expect(c.lookup(inv(f), T0), key(f)).toBe((liveIds[k]! << 1) | 1);
      const o = c.orig(liveIds[k]!)!;
      expect([o.family, o.proto, o.sport, o.dport], key(f)).toEqual([f.family, f.proto, f.sport, f.dport]);
    });
    expect(c.lookup(flows[2]!, T0)).toBe(NONE);
    // Slots are handed out after the last used one, as before.
    expect(c.insert({ ...client, sport: 54000 }, undefined, T0)).toBe(12);
    // A new table starts warming from its beginning.
    expect(c.init(6, 2)).toBe(true);
    expect(c.x.warmStorage(0) >>> 0).toBe(64 * es + 4 * ss);
  });

  it('refuses sizes out of range and works (empty) before init without trapping', () => {
    const c = new Ct(0, 0, 0, 0, false);
    const t = c.put(client, 0);
    expect(c.x.ctLookup(t, 1) >>> 0).toBe(NONE);
    expect(c.x.ctInsert(t, c.put(inv(client), 1), 1) >>> 0).toBe(NONE);
    expect(c.x.ctReap(1, 100)).toBe(0);
    expect(c.packet(0, 0, SYN, 1)).toBe(1);
    expect(c.x.ctExportRecord(0, c.core.scratch, 1)).toBe(0);
    expect(c.x.ctFlushReplySrc(4, 0, 1, 0, 0, 0, 0)).toBe(0);
    expect(c.x.ctNextUsed(0) >>> 0).toBe(NONE);
    expect(c.x.ctBytes()).toBe(0);
    expect(c.init(0, 0)).toBe(false);
    expect(c.init(25, 0)).toBe(false);
    expect(c.init(8, 9)).toBe(false);
    expect(c.init(8, 8)).toBe(true);
    // A second init replaces the table.
    expect(c.insert(client, undefined, 1)).toBe(0);
    expect(c.init(6, 2)).toBe(true);
    expect(c.count()).toBe(0);
    expect(c.lookup(client, 1)).toBe(NONE);
    expect(c.x.ctCapacity()).toBe(64);
  });
});

describe('conntrack table: lookup', () => {
  it('finds a connection from both ends, as (index << 1) | dir', () => {
    const c = new Ct();
    const i = c.insert(client, undefined, T0);
    expect(c.lookup(client, T0)).toBe(i << 1);
    expect(c.lookup(inv(client), T0)).toBe((i << 1) | 1);
    expect(c.lookup({ ...client, sport: 51001 }, T0)).toBe(NONE);
    expect(c.lookup({ ...client, proto: UDP }, T0)).toBe(NONE);
    expect(c.lookup({ ...client, dst: '198.18.9.2' }, T0)).toBe(NONE);
    expect(c.orig(i)).toEqual({ ...client, type: 0 });
    expect(c.reply(i)).toEqual({ ...inv(client), type: 0 });
    expect(c.status(i) & (SNAT | DNAT)).toBe(0);
  });

  it('a DNATed and SNATed connection is found from the client side and from the backend side', () => {
    const c = new Ct();
    // client → VIP:80 becomes client(masq 198.18.0.254:61000) → pod 198.18.5.7:8080
    const orig: T = { family: 4, proto: TCP, sport: 40000, dport: 80, src: '198.18.1.10', dst: '198.18.100.1' };
    const reply: T = { family: 4, proto: TCP, sport: 8080, dport: 61000, src: '198.18.5.7', dst: '198.18.0.254' };
    const i = c.insert(orig, reply, T0);
    expect(c.status(i) & (SNAT | DNAT)).toBe(SNAT | DNAT);
    expect(c.lookup(orig, T0)).toBe(i << 1);
    expect(c.lookup(reply, T0)).toBe((i << 1) | 1);
    // The un-NATed inverse of the original is not a key.
    expect(c.lookup(inv(orig), T0)).toBe(NONE);
    // DNAT only / SNAT only / port-only DNAT.
    const d = c.insert({ ...orig, sport: 1 }, { ...reply, dst: orig.src, dport: 1 }, T0);
    expect(c.status(d) & (SNAT | DNAT)).toBe(DNAT);
    const s = c.insert({ ...orig, sport: 2 }, { ...inv({ ...orig, sport: 2 }), dst: '198.18.0.254' }, T0);
    expect(c.status(s) & (SNAT | DNAT)).toBe(SNAT);
    const p = c.insert({ ...orig, sport: 3 }, { ...inv({ ...orig, sport: 3 }), sport: 8080 }, T0);
    expect(c.status(p) & (SNAT | DNAT)).toBe(DNAT);
  });

  it('IPv6 flows: both ends, NAT, and addresses that fold alike stay apart', () => {
    const c = new Ct(10, 4);
    const o: T = { family: 6, proto: TCP, sport: 1234, dport: 443, src: 'fd00::1:2', dst: 'fd00:0:0:1::9' };
    const r: T = { family: 6, proto: TCP, sport: 8443, dport: 1234, src: 'fd00:5::7', dst: 'fd00::1:2' };
    const i = c.insert(o, r, T0);
    expect(i).not.toBe(NONE);
    expect(c.lookup(o, T0)).toBe(i << 1);
    expect(c.lookup(r, T0)).toBe((i << 1) | 1);
    expect(c.orig(i)).toEqual({ ...o, type: 0, src: 'fd00:0:0:0:0:0:1:2', dst: 'fd00:0:0:1:0:0:0:9' });
    expect(c.status(i) & DNAT).toBe(DNAT);
    // Same XOR fold of the destination (words swapped), different address: not a match.
    const swapped: T = { ...o, dst: '0:0:fd00:0:0:1::9' };
    expect(c.lookup(swapped, T0)).toBe(NONE);
    const j = c.insert(swapped, undefined, T0);
    expect(j).not.toBe(NONE);
    expect(c.lookup(swapped, T0)).toBe(j << 1);
    expect(c.lookup(o, T0)).toBe(i << 1);
    // An IPv4 tuple with the same first words is another flow.
    expect(c.lookup({ family: 4, proto: TCP, sport: 1234, dport: 443, src: '253.0.0.0', dst: '253.0.0.0' }, T0)).toBe(NONE);
  });

  it('an expired entry found by lookup is gone (removed and counted)', () => {
    const c = new Ct();
    const i = c.insert({ ...client, proto: UDP }, undefined, T0);
    expect(c.packet(i, 0, 0, T0)).toBe(S_NEW);
    expect(c.lookup({ ...client, proto: UDP }, T0 + 30 * SEC - 1)).toBe(i << 1);
    expect(c.lookup(inv({ ...client, proto: UDP }), T0 + 30 * SEC)).toBe(NONE);
    expect(c.count()).toBe(0);
    expect(c.stat('EXPIRED')).toBe(1);
  });
});

describe('conntrack table: insert and delete', () => {
  it('refuses a tuple already tracked in either direction (clash) and bad tuples', () => {
    const c = new Ct();
    c.insert(client, undefined, T0);
    expect(c.insert(client, { ...inv(client), dport: 1 }, T0)).toBe(NONE);
    expect(c.insert({ ...client, sport: 9 }, inv(client), T0)).toBe(NONE);
    expect(c.insert(inv(client), client, T0)).toBe(NONE);
    expect(c.stat('CLASH')).toBe(3);
    // family, family mix, proto mix, ICMP type on TCP, ICMPv6 over IPv4, IPv4 padding words
    expect(c.insert({ ...client, family: 5 as 4 }, undefined, T0)).toBe(NONE);
    expect(c.insert({ ...client, sport: 7 }, { ...inv(client), family: 6, src: '::1', dst: '::2' }, T0)).toBe(NONE);
    expect(c.insert({ ...client, sport: 7 }, { ...inv({ ...client, sport: 7 }), proto: UDP }, T0)).toBe(NONE);
    expect(c.insert({ ...client, sport: 7, type: 3 }, undefined, T0)).toBe(NONE);
    expect(c.insert({ ...client, sport: 7, proto: 58 }, undefined, T0)).toBe(NONE);
    const o = c.put({ ...client, sport: 7 }, 0);
    c.core.dv().setUint32(o + 12, 1, true); // s1 of an IPv4 tuple
    expect(c.x.ctInsert(o, c.put(inv({ ...client, sport: 7 }), 1), T0) >>> 0).toBe(NONE);
    expect(c.stat('BAD_ARG')).toBe(6);
    expect(c.count()).toBe(1);
    expect(c.stat('INSERTS')).toBe(1);
  });

  it('delete unlinks both directions and frees the slot for reuse', () => {
    const c = new Ct(4, 2);
    const ids = [];
    for (let p = 0; p < 16; p++) ids.push(c.insert({ ...client, sport: p }, undefined, T0));
    expect(new Set(ids).size).toBe(16);
    c.x.ctDelete(ids[5]);
    expect(c.lookup({ ...client, sport: 5 }, T0)).toBe(NONE);
    expect(c.lookup(inv({ ...client, sport: 5 }), T0)).toBe(NONE);
    expect(c.count()).toBe(15);
    c.x.ctDelete(ids[5]); // already free
    c.x.ctDelete(123456);
    expect(c.stat('BAD_ARG')).toBe(2);
    expect(c.insert({ ...client, sport: 100 }, undefined, T0)).toBe(ids[5]);
    for (let p = 0; p < 16; p++) {
      if (p === 5) continue;
      expect(c.lookup({ ...client, sport: p }, T0)).toBe(ids[p] << 1);
      expect(c.lookup(inv({ ...client, sport: p }), T0)).toBe((ids[p] << 1) | 1);
    }
    expect(c.lookup({ ...client, sport: 100 }, T0)).toBe(ids[5] << 1);
  });
});

describe('conntrack table: full', () => {
  // Reproduces early_drop(): from the new tuple's bucket, up to 8 buckets; in the first that holds
  // something droppable, every non-assured (or expired) entry goes.
  function expectedDrops(c: Ct, live: Map<number, T>, t: T, assured: Set<number>): number[] {
    const mask = 2 * (c.x.ctCapacity() >>> 0) - 1;
    const bucketOf = (x: T) => (c.x.hashTuple(c.put(x, 2)) >>> 0) & mask;
    const start = bucketOf(t);
    for (let k = 0; k < 8; k++) {
      const b = (start + k) & mask;
      const hits = [...live].filter(([i, x]) => !assured.has(i) && (bucketOf(x) === b || bucketOf(inv(x)) === b));
      if (hits.length) return hits.map(([i]) => i).sort((a, b) => a - b);
    }
    return [];
  }

  it('early-drops the non-assured entries of the first bucket in range that has any', () => {
    const c = new Ct(3, 1);
    const live = new Map<number, T>();
    for (let p = 0; p < 8; p++) {
      const t = { ...client, proto: UDP, sport: 1000 + p };
      live.set(c.insert(t, undefined, T0), t);
    }
    // Make two of them assured (UDP seen both ways after the stream delay).
    const assured = new Set<number>();
    for (const i of [0, 1]) {
      c.packet(i, 0, 0, T0);
      c.packet(i, 1, 0, T0 + 1);
      c.packet(i, 0, 0, T0 + 3 * SEC);
      expect(c.status(i) & ASSURED).toBe(ASSURED);
      assured.add(i);
    }
    // Pick a new tuple whose range reaches some droppable entry.
    let t: T | undefined, want: number[] = [];
    for (let p = 0; p < 1000 && !want.length; p++) {
      t = { ...client, proto: UDP, sport: 20000 + p };
      want = expectedDrops(c, live, t, assured);
    }
    expect(want.length).toBeGreaterThan(0);
    const before = c.count();
    const i = c.insert(t!, undefined, T0 + 3 * SEC);
    expect(i).not.toBe(NONE);
    expect(c.stat('EARLY_DROPS')).toBe(want.length);
    expect(c.count()).toBe(before - want.length + 1);
    for (const [j, x] of live) expect(c.lookup(x, T0 + 3 * SEC) !== NONE).toBe(!want.includes(j));
    for (const j of assured) expect(c.lookup(live.get(j)!, T0 + 3 * SEC)).toBe(j << 1);
  });

  it('counts a failure when every candidate is assured, and expired ones make room again', () => {
    const c = new Ct(3, 1);
    const tuples: T[] = [];
    for (let p = 0; p < 8; p++) {
      const t = { ...client, sport: 2000 + p };
      const i = c.insert(t, undefined, T0);
      c.packet(i, 0, SYN, T0);
      c.packet(i, 1, SYN | ACK, T0);
      expect(c.packet(i, 0, ACK, T0)).toBe(S_ESTABLISHED);
      expect(c.status(i) & (ASSURED | SEEN_REPLY)).toBe(ASSURED | SEEN_REPLY);
      tuples.push(t);
    }
    for (let p = 0; p < 20; p++) expect(c.insert({ ...client, sport: 3000 + p }, undefined, T0 + 1)).toBe(NONE);
    expect(c.stat('INSERT_FAILED')).toBe(20);
    expect(c.stat('EARLY_DROPS')).toBe(0);
    expect(c.count()).toBe(8);
    for (const t of tuples) expect(c.lookup(t, T0 + 1)).not.toBe(NONE);
    // Close them all with RST (CLOSE, 10 s), then past that time the next insert finds room.
    for (let i = 0; i < 8; i++) c.packet(i, 1, 0x04, T0 + 2);
    const later = T0 + 2 + 10 * SEC;
    let ok = 0;
    for (let p = 0; p < 8; p++) if (c.insert({ ...client, sport: 4000 + p }, undefined, later) !== NONE) ok++;
    expect(ok).toBeGreaterThan(0);
    expect(c.stat('EXPIRED')).toBeGreaterThan(0);
  });

  it('an IPv6 flow fails when the side table is full of assured flows; IPv4 still fits', () => {
    const c = new Ct(4, 1);
    const v6 = (p: number): T => ({ family: 6, proto: UDP, sport: p, dport: 53, src: 'fd00::1', dst: 'fd00::2' });
    for (let p = 0; p < 2; p++) {
      const i = c.insert(v6(p), undefined, T0);
      c.packet(i, 0, 0, T0);
      c.packet(i, 1, 0, T0);
      c.packet(i, 1, 0, T0 + 5 * SEC);
      expect(c.status(i) & ASSURED).toBe(ASSURED);
    }
    expect(c.insert(v6(7), undefined, T0 + 5 * SEC)).toBe(NONE);
    expect(c.stat('INSERT_FAILED')).toBe(1);
    expect(c.insert(client, undefined, T0 + 5 * SEC)).not.toBe(NONE);
    // Freeing one IPv6 flow frees its side slot.
    c.x.ctDelete(c.lookup(v6(0), T0 + 5 * SEC) >>> 1);
    const j = c.insert(v6(7), undefined, T0 + 5 * SEC);
    expect(j).not.toBe(NONE);
    expect(c.orig(j)!.src).toBe('fd00:0:0:0:0:0:0:1');
  });
});

describe('conntrack table: hashing', () => {
  it('the hash depends on the seed and spreads tuples over the buckets', () => {
    const a = new Ct(12, 0, 1, 2), b = new Ct(12, 0, 3, 4);
    const mask = 2 * 4096 - 1;
    const seen = new Set<number>();
    let differ = 0;
    for (let p = 0; p < 4096; p++) {
      const t = { ...client, sport: p };
      const ha = a.x.hashTuple(a.put(t, 0)) >>> 0, hb = b.x.hashTuple(b.put(t, 0)) >>> 0;
      if (ha !== hb) differ++;
      seen.add(ha & mask);
    }
    expect(differ).toBeGreaterThan(4000);
    // 4096 balls in 8192 bins: about 3223 distinct expected; a poor hash would bunch them.
    expect(seen.size).toBeGreaterThan(3000);
    expect(key(client)).toContain('198.18.1.10');
  });
});
