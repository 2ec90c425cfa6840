// The direct mode's op buffer written in place in the core's config buffer: the same results and
// live table as ops framed in a buffer of its own, also when the ops outgrow the room reserved
// (the batch moves to its own buffer), with a bad service left out either way.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../host-node/dataplane.js';
import { DirectOpBuffer, putFrameBound, runDirectOps, type DirectCore, type DirectOp, type DirectService } from '../../host-node/core/svc-config.js';
import { buildPacket, decodePacket } from '../../host-node/core/packet.js';

function svc(name: string, vip: string, over: Partial<DirectService> = {}): DirectService {
  return {
    name, family: 4, protocol: 'TCP', hostId: 1, frontends: [{ kind: 'cluster', ip: vip, port: 80 }],
    cluster: [{ ip: '198.19.1.1', port: 8080 }], local: [], sourceRanges: [],
    hasEndpoints: true, masqueradeAll: false, internalLocal: false, externalLocal: false, firewall: false, affinityMs: 0,
    ...over,
  };
}

async function core(): Promise<{ dp: Dataplane; c: DirectCore }> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', seed: 3 });
  return { dp, c: (dp as unknown as { core: DirectCore }).core };
}

/** Where a new flow to `vip`:80 goes. */
function dnat(dp: Dataplane, vip: string, sport: number): string {
  const r = dp.process(buildPacket({ src: '198.19.9.9', dst: vip, proto: 'tcp', sport, dport: 80, flags: 'S' }), 1);
  return r.packet ? decodePacket(r.packet).dst : r.verdict;
}

const ops = (n: number): DirectOp[] => {
  const out: DirectOp[] = [];
  for (let i = 1; i <= n; i++) out.push({ op: 'put', slot: -1, svc: svc(`s${i}`, `198.18.1.${i}`, { cluster: [{ ip: `198.19.1.${i}`, port: 8080 }] }) });
  // Not an address: left out and named, the others still go in.
  out.splice(3, 0, { op: 'put', slot: -1, svc: svc('bad', '198.18.2.1', { cluster: [{ ip: 'nope', port: 80 }] }) });
  return out;
};

describe('DirectOpBuffer in the core', () => {
  for (const [what, room] of [['with room for every op', putFrameBound(1, 1, 0) * 41], ['spilling past the room reserved', 100]] as const) {
    it(`${what}: the same results and table as a buffer of its own`, async () => {
      const a = await core();
      const own = new DirectOpBuffer(64);
      const ownErrors = ops(40).map((op) => own.push(op)?.message ?? null);
      const expected = runDirectOps(a.c, own.bytes());

      const b = await core();
      const buf = new DirectOpBuffer(64);
      buf.resetInCore(b.c, room);
      const errors = ops(40).map((op) => buf.push(op)?.message ?? null);
      const results = buf.run(b.c);
      expect(errors).toEqual(ownErrors);
      expect(errors.filter((e) => e !== null)).toEqual(['service bad: cluster[0]: not an IP address: "nope"']);
      expect(results).toEqual(expected);
      expect(results).toHaveLength(40);
      expect(b.c.serviceCount()).toBe(40);
      for (const i of [1, 17, 40]) expect(dnat(b.dp, `198.18.1.${i}`, 1000 + i)).toBe(`198.19.1.${i}`);

      // The next batch in place again: a delete by slot and a replace.
      buf.resetInCore(b.c, room);
      expect(buf.push({ op: 'delete', slot: results[0]! })).toBeNull();
      expect(buf.push({ op: 'put', slot: results[1]!, svc: svc('s2', '198.18.1.2', { cluster: [{ ip: '198.19.7.7', port: 8080 }] }) })).toBeNull();
      expect(buf.run(b.c)).toEqual([0, results[1]]);
      expect(b.c.serviceCount()).toBe(39);
      expect(dnat(b.dp, '198.18.1.2', 2000)).toBe('198.19.7.7');
    });
  }
});
