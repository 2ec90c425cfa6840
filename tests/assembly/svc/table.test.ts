// The direct service table (assembly/svc/table.ts) on its own: per-service insert / replace /
// delete, slot reuse, index growth and backward-shift deletion, refused input leaving the live
// entries as they were, and the framed svcApply.
import { describe, it, expect } from 'vitest';
import { loadTestingCore, type TestingCore } from '../../support/testing-core.js';
import { DirectOpBuffer, encodeDirectOps, type DirectService, type DirectOp } from '../../../host-node/core/svc-config.js';
import { ipWords, tryParseIP } from '../../../host-node/core/words.js';
import { buildPacket } from '../../../host-node/core/packet.js';

const words = (ip: string) => ipWords(tryParseIP(ip)!);
const TCP = 6;

function svc(name: string, vip: string, over: Partial<DirectService> = {}): DirectService {
  return {
    name, family: 4, protocol: 'TCP', hostId: 1, frontends: [{ kind: 'cluster', ip: vip, port: 80 }],
    cluster: [{ ip: '198.19.1.1', port: 8080 }], local: [], sourceRanges: [],
    hasEndpoints: true, masqueradeAll: false, internalLocal: false, externalLocal: false, firewall: false, affinityMs: 0,
    ...over,
  };
}

/** The bare blob of one put. */
function blob(s: DirectService): Uint8Array {
  const framed = encodeDirectOps([{ op: 'put', slot: -1, svc: s }]);
  const len = new DataView(framed.buffer).getUint32(8, true);
  return framed.slice(12, 12 + len);
}

function put(c: TestingCore, slot: number, b: Uint8Array): number {
  return c.x.svcPut!(slot, c.put(b), b.length);
}
const find = (c: TestingCore, vip: string, port = 80) => c.x.findAddr!(4, TCP, port, ...words(vip));

describe('direct service table', () => {
  it('inserts, replaces in place and deletes one service at a time', () => {
    const c = loadTestingCore('svc');
    const a = put(c, -1, blob(svc('a', '198.18.0.1', { frontends: [{ kind: 'cluster', ip: '198.18.0.1', port: 80 }, { kind: 'nodePort', port: 30001 }] })));
    const b = put(c, -1, blob(svc('b', '198.18.0.2')));
    expect([a, b]).toEqual([0, 1]);
    expect(find(c, '198.18.0.1')).toBe(0);
    expect(c.x.findNodePort!(4, TCP, 30001)).toBe(0);
    expect(c.x.svcFrontendCount!()).toBe(3);

    // Replace a: the node port goes, an external IP comes, endpoints change; same slot.
    const a2 = svc('a', '198.18.0.1', {
      frontends: [{ kind: 'cluster', ip: '198.18.0.1', port: 80 }, { kind: 'external', ip: '198.18.15.1', port: 80 }],
      cluster: [{ ip: '198.19.1.1', port: 8080 }, { ip: '198.19.1.2', port: 8080 }], local: [{ ip: '198.19.1.1', port: 8080 }],
    });
    expect(put(c, 0, blob(a2))).toBe(0);
    expect(c.x.findNodePort!(4, TCP, 30001)).toBe(-1);
    expect(find(c, '198.18.15.1')).toBe(0);
    expect([c.x.clusterCount!(0), c.x.localCount!(0)]).toEqual([2, 1]);
    expect(c.x.svcLiveCount!()).toBe(2);

    expect(c.x.svcDelete!(0)).toBe(0);
    expect(find(c, '198.18.0.1')).toBe(-1);
    expect(find(c, '198.18.15.1')).toBe(-1);
    expect(find(c, '198.18.0.2')).toBe(1);
    expect(c.x.svcDelete!(0)).toBe(-8);                       // not live any more
    expect(put(c, -1, blob(svc('c', '198.18.0.3')))).toBe(0);  // the freed slot is reused
    expect(c.x.svcLiveCount!()).toBe(2);
  });

  it('knows a cluster IP while any service port holds it, whatever the port (the key is shared, not a frontend)', () => {
    const c = loadTestingCore('svc');
    const vip = (ip: string) => c.x.isClusterIP4!(words(ip)[0]!);
    const http = put(c, -1, blob(svc('web:http', '198.18.0.1')));
    const https = put(c, -1, blob(svc('web:https', '198.18.0.1', { frontends: [{ kind: 'cluster', ip: '198.18.0.1', port: 443 }] })));
    // An external IP is no cluster IP.
    const ext = put(c, -1, blob(svc('ext', '198.18.0.3', { frontends: [{ kind: 'cluster', ip: '198.18.0.3', port: 80 }, { kind: 'external', ip: '198.18.15.1', port: 80 }] })));
    expect([vip('198.18.0.1'), vip('198.18.0.3'), vip('198.18.15.1'), vip('198.18.0.2')]).toEqual([1, 1, 0, 0]);
    expect(c.x.svcFrontendCount!()).toBe(4);
    expect(c.x.svcDelete!(http)).toBe(0);
    expect(vip('198.18.0.1')).toBe(1);
    // Replaced with another address: the old one goes with it.
    expect(put(c, https, blob(svc('web:https', '198.18.0.9', { frontends: [{ kind: 'cluster', ip: '198.18.0.9', port: 443 }] })))).toBe(https);
    expect([vip('198.18.0.1'), vip('198.18.0.9')]).toEqual([0, 1]);
    expect(c.x.svcDelete!(https)).toBe(0);
    expect(c.x.svcDelete!(ext)).toBe(0);
    expect([vip('198.18.0.9'), vip('198.18.0.3'), c.x.svcFrontendCount!()]).toEqual([0, 0, 0]);
  });

  it('refuses bad input with a code and leaves the live entries as they were', () => {
    const c = loadTestingCore('svc');
    expect(put(c, -1, blob(svc('a', '198.18.0.1')))).toBe(0);
    expect(put(c, -1, blob(svc('b', '198.18.0.2', { frontends: [{ kind: 'cluster', ip: '198.18.0.2', port: 80 }, { kind: 'external', ip: '198.18.0.1', port: 80 }] })))).toBe(-6);
    expect(find(c, '198.18.0.2')).toBe(-1);                   // nothing of b went in

    const good = blob(svc('a', '198.18.0.9'));
    const bad = (mutate: (dv: DataView, b: Uint8Array) => void): Uint8Array => {
      const b = good.slice();
      mutate(new DataView(b.buffer), b);
      return b;
    };
    const cases: Array<[string, Uint8Array, number]> = [
      ['magic', bad((dv) => dv.setUint32(0, 0x12345678, true)), -1],
      ['length', good.subarray(0, good.length - 4), -3],
      ['family', bad((dv) => dv.setUint8(4, 5)), -4],
      ['protocol', bad((dv) => dv.setUint8(5, 47)), -9],
      ['flags', bad((dv) => dv.setUint32(8, 0x100, true)), -9],
      ['frontend kind', bad((dv) => dv.setUint8(40, 9)), -9],
      ['frontend port 0', bad((dv) => dv.setUint16(42, 0, true)), -9],
      ['IPv4 frontend with upper words', bad((dv) => dv.setUint32(52, 1, true)), -4],
      ['destination port 0', bad((dv) => dv.setUint16(40 + 24 + 16, 0, true)), -9],
      ['no frontends', bad((dv) => dv.setUint32(20, 0, true)), -3],
    ];
    for (const [name, b, code] of cases) {
      expect({ name, rc: put(c, 0, b) }).toEqual({ name, rc: code });
      // a is untouched: still on its old address with its old destination.
      expect(find(c, '198.18.0.1')).toBe(0);
      expect(find(c, '198.18.0.9')).toBe(-1);
      expect(c.x.clusterCount!(0)).toBe(1);
    }
    const dupInBlob = blob(svc('a', '198.18.0.9', { frontends: [{ kind: 'cluster', ip: '198.18.0.9', port: 80 }, { kind: 'external', ip: '198.18.0.9', port: 80 }] }));
    expect(put(c, 0, dupInBlob)).toBe(-6);
    expect(put(c, 5, good)).toBe(-8);
    expect(find(c, '198.18.0.1')).toBe(0);
  });

  it('grows its index and keeps every key findable through many inserts and deletes', () => {
    const c = loadTestingCore('svc');
    const n = 5000;
    const ip = (i: number) => `198.18.${(i >> 8) & 255}.${i & 255}`;
    for (let i = 0; i < n; i++) expect(put(c, -1, blob(svc(`s${i}`, ip(i), { frontends: [{ kind: 'cluster', ip: ip(i), port: 80 }, { kind: 'nodePort', port: 20000 + i }] })))).toBe(i);
    expect(c.x.svcIndexSlots!()).toBeGreaterThanOrEqual(4 * n);   // load factor ≤ 1/2 for 2n keys
    for (let i = 0; i < n; i += 2) expect(c.x.svcDelete!(i)).toBe(0);
    expect(c.x.svcFrontendCount!()).toBe(n);
    for (let i = 0; i < n; i++) {
      const want = i % 2 === 0 ? -1 : i;
      if (find(c, ip(i)) !== want || c.x.findNodePort!(4, TCP, 20000 + i) !== want) throw new Error(`service ${i}: expected ${want}`);
    }
    // Freed slots are taken again, most recently freed first.
    expect(put(c, -1, blob(svc('again', '198.19.200.1')))).toBe(n - 2);
  });

  it('reserves room for a whole list at once: nothing grows on the way there; absurd sizes are refused', () => {
    const c = loadTestingCore('svc');
    const n = 3000;
    const ip = (i: number) => `198.18.${(i >> 8) & 255}.${i & 255}`;
    const two = (i: number) => svc(`s${i}`, ip(i), { frontends: [{ kind: 'cluster', ip: ip(i), port: 80 }, { kind: 'nodePort', port: 20000 + i }] });
    expect(c.x.svcReserve!(n, 2 * n)).toBe(0);
    const index = c.x.svcIndexSlots!(), slots = c.x.svcSlotCapacity!();
    expect(index).toBeGreaterThanOrEqual(4 * n);   // load factor ≤ 1/2 for 2n keys
    expect(slots).toBeGreaterThanOrEqual(n);
    for (let i = 0; i < n; i++) expect(put(c, -1, blob(two(i)))).toBe(i);
    expect([c.x.svcIndexSlots!(), c.x.svcSlotCapacity!()]).toEqual([index, slots]);
    // Less than there is changes nothing; past the limit is refused and changes nothing.
    expect(c.x.svcReserve!(10, 10)).toBe(0);
    expect(c.x.svcReserve!(1 << 22, 0)).toBe(-9);
    expect(c.x.svcReserve!(0, 0xffffffff)).toBe(-9);
    expect([c.x.svcIndexSlots!(), c.x.svcSlotCapacity!()]).toEqual([index, slots]);
    // More over a live table: every key moves over and stays findable.
    expect(c.x.svcReserve!(4 * n, 8 * n)).toBe(0);
    expect(c.x.svcIndexSlots!()).toBeGreaterThanOrEqual(16 * n);
    expect(c.x.svcSlotCapacity!()).toBeGreaterThanOrEqual(4 * n);
    for (let i = 0; i < n; i++) {
      if (find(c, ip(i)) !== i || c.x.findNodePort!(4, TCP, 20000 + i) !== i) throw new Error(`service ${i} lost`);
    }
    expect(put(c, -1, blob(svc('next', '198.19.200.1')))).toBe(n);
  });

  it('runs framed operations in order, each on its own, and refuses broken framing whole', () => {
    const c = loadTestingCore('svc');
    const ops: DirectOp[] = [
      { op: 'put', slot: -1, svc: svc('a', '198.18.0.1') },
      { op: 'put', slot: -1, svc: svc('dup', '198.18.0.1') },
      { op: 'put', slot: -1, svc: svc('b', '198.18.0.2') },
      { op: 'delete', slot: 0 },
      { op: 'delete', slot: 7 },
    ];
    const framed = encodeDirectOps(ops);
    const at = c.put(framed);
    expect(c.x.svcApply!(at, framed.length)).toBe(5);
    const dv = c.dv();
    const results = [0, 1, 2, 3, 4].map((i) => {
      let o = at;
      for (let k = 0; k < i; k++) o += 12 + ((dv.getUint32(o + 8, true) + 3) & ~3);
      return dv.getInt32(o + 4, true);
    });
    expect(results).toEqual([0, -6, 1, 0, -8]);
    expect(find(c, '198.18.0.1')).toBe(-1);
    expect(find(c, '198.18.0.2')).toBe(1);

    const more = encodeDirectOps([{ op: 'put', slot: -1, svc: svc('c', '198.18.0.3') }, { op: 'clear' }]);
    const p2 = c.put(more);
    expect(c.x.svcApply!(p2, more.length - 4)).toBe(-3);   // truncated: nothing runs
    expect(find(c, '198.18.0.3')).toBe(-1);
    expect(c.x.svcLiveCount!()).toBe(1);
    expect(c.x.svcApply!(p2, more.length)).toBe(2);
    expect(c.x.svcLiveCount!()).toBe(0);
    expect(find(c, '198.18.0.3')).toBe(-1);
  });

  it('a reused op buffer frames what encodeDirectOps frames, grows past its first size, and leaves out a bad service', () => {
    const c = loadTestingCore('svc');
    const buf = new DirectOpBuffer(64);
    const many: DirectOp[] = [];
    for (let i = 1; i <= 50; i++) many.push({ op: 'put', slot: -1, svc: svc(`s${i}`, `198.18.1.${i}`) });
    for (const op of many) expect(buf.push(op)).toBeNull();
    expect([...buf.bytes()]).toEqual([...encodeDirectOps(many)]);
    const at = c.put(buf.bytes());
    expect(c.x.svcApply!(at, buf.length)).toBe(50);
    expect(c.x.svcLiveCount!()).toBe(50);
    // The next batch starts from the beginning; a service that does not encode is named and skipped.
    buf.reset();
    expect(buf.push({ op: 'delete', slot: 0 })).toBeNull();
    const bad = buf.push({ op: 'put', slot: -1, svc: svc('bad', '198.18.2.1', { cluster: [{ ip: 'nope', port: 80 }] }) });
    expect(bad?.message).toBe('service bad: cluster[0]: not an IP address: "nope"');
    expect(buf.push({ op: 'put', slot: -1, svc: svc('ok', '198.18.2.2') })).toBeNull();
    const p2 = c.put(buf.bytes());
    expect(c.x.svcApply!(p2, buf.length)).toBe(2);
    expect(find(c, '198.18.1.1')).toBe(-1);
    expect(find(c, '198.18.2.1')).toBe(-1);
    expect(find(c, '198.18.2.2')).toBe(0);
    expect(c.x.svcLiveCount!()).toBe(50);
  });

  it('decides from the live entries: REJECT, local-only, source ranges', () => {
    const c = loadTestingCore('svc');
    c.x.addLocal4!(words('198.18.200.1')[0]!);
    c.x.podCIDR4!(words('198.19.0.0')[0]!, 16);
    put(c, -1, blob(svc('empty', '198.18.0.1', {
      hasEndpoints: false, cluster: [],
      frontends: [{ kind: 'cluster', ip: '198.18.0.1', port: 80 }, { kind: 'external', ip: '198.18.15.1', port: 80 }, { kind: 'external', ip: '198.18.200.1', port: 81 }],
    })));
    put(c, -1, blob(svc('lb', '198.18.0.2', {
      frontends: [{ kind: 'cluster', ip: '198.18.0.2', port: 80 }, { kind: 'loadBalancer', ip: '198.18.14.2', port: 80 }, { kind: 'nodePort', port: 30002 }],
      externalLocal: true, firewall: true, sourceRanges: ['203.0.113.0/24'],
      cluster: [{ ip: '198.19.1.1', port: 8080 }, { ip: '198.19.2.2', port: 8080 }], local: [{ ip: '198.19.1.1', port: 8080 }],
    })));
    const decide = (src: string, dst: string, dport: number, local = false) => {
      const p = buildPacket({ src, dst, proto: 'tcp', sport: 40000, dport, flags: 'S' });
      const rc = c.x.decide!(c.put(p), p.length, 1, local ? 1 : 0);
      return rc === 1 ? `${c.x.decidedAddr!() >>> 0 === words('198.19.1.1')[0] ? 'ep1' : 'ep2'}${c.x.decidedMasquerade!() ? ' masq' : ''}` : rc;
    };
    expect(decide('198.19.3.3', '198.18.0.1', 80)).toBe(2);            // REJECT
    expect(decide('198.19.3.3', '198.18.15.1', 80)).toBe(2);           // external IP: REJECT (KUBE-EXTERNAL-SERVICES, FORWARD)
    expect(decide('198.18.200.1', '198.18.0.1', 80, true)).toBe(2);    // the node's own: REJECT (KUBE-SERVICES, OUTPUT)
    expect(decide('198.18.200.1', '198.18.15.1', 80, true)).toBe(0);   // to an external IP not its own: no rule sees it
    expect(decide('198.18.200.1', '198.18.200.1', 81, true)).toBe(2);  // to its own address: INPUT, REJECT
    expect(decide('198.19.3.3', '198.18.0.9', 80)).toBe(0);            // no service
    expect(decide('203.0.113.5', '198.18.14.2', 80)).toBe('ep1');      // allowed, local only, source kept
    expect(decide('192.0.2.5', '198.18.14.2', 80)).toBe(4);            // outside the ranges
    expect(decide('192.0.2.5', '198.18.200.1', 30002)).toBe('ep1');    // node port: no ranges
    // An endpoint reaching itself is masqueraded (hairpin); reaching the other one it is not.
    const seen = new Set(Array.from({ length: 24 }, () => decide('198.19.1.1', '198.18.0.2', 80)));
    expect([...seen].sort()).toEqual(['ep1 masq', 'ep2']);
  });
});

describe('affinity table', () => {
  const withAffinity = (c: TestingCore) => put(c, -1, blob(svc('s', '198.18.0.1', { affinityMs: 10_000, cluster: [{ ip: '198.19.1.1', port: 8081 }, { ip: '198.19.1.2', port: 8082 }] })));

  it('holds a client for exactly the timeout after its last stamp', () => {
    const c = loadTestingCore('svc');
    const s = withAffinity(c);
    c.x.affinityStamp!(s, 0x0a000001, 1, 1000);
    expect(c.x.affinityPort!(s, 0x0a000001, 11000, 10_000)).toBe(8082);
    expect(c.x.affinityPort!(s, 0x0a000001, 11001, 10_000)).toBe(0);
    expect(c.x.affinityPort!(s, 0x0a000002, 1000, 10_000)).toBe(0);
  });

  it('forgets a deleted service\'s clients even when its slot is reused', () => {
    const c = loadTestingCore('svc');
    const s = withAffinity(c);
    c.x.affinityStamp!(s, 0x0a000001, 0, 1000);
    expect(c.x.svcDelete!(s)).toBe(0);
    expect(withAffinity(c)).toBe(s);
    expect(c.x.affinityPort!(s, 0x0a000001, 1000, 10_000)).toBe(0);
  });

  it('when full, gives up the oldest entries and keeps the newest', () => {
    const c = loadTestingCore('svc');
    const s = withAffinity(c);
    const n = 300_000;   // over four times the 65,536 entries
    c.x.affinityFill!(s, 0x01000000, n, 0);
    const kept = (from: number, count: number) => {
      let k = 0;
      for (let i = from; i < from + count; i++) if (c.x.affinityPort!(s, 0x01000000 + i, n, 1 << 30) !== 0) k++;
      return k;
    };
    expect(kept(n - 1000, 1000)).toBe(1000);
    expect(kept(0, 1000)).toBeLessThan(20);
  });
});
