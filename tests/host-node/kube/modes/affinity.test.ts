// Session affinity ClientIP with timeoutSeconds, in every mode: a client keeps its endpoint while
// its last new connection is at most timeoutSeconds old (xt_recent --rcheck --seconds: the stamp
// may be exactly that old), and is balanced afresh after that.
import { describe, it, expect } from 'vitest';
import { MODES, dataplaneFor, applyIn, runCase, service, slice, docs, type FlowCase } from './harness.js';

const http = [{ name: 'http', port: 80, targetPort: 8080 }];
const manifests = docs(
  service('sticky', { clusterIP: '198.18.0.70', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } }, ports: http }),
  slice('sticky', [{ ip: '198.19.1.1' }, { ip: '198.19.1.2' }, { ip: '198.19.1.3' }], http),
);
const clients = Array.from({ length: 8 }, (_, i) => `198.19.9.${i + 1}`);
const flow = (src: string): FlowCase => ({ name: src, src, dst: '198.18.0.70', dport: 80, flows: 6, expect: [] });

describe.each(MODES)('session affinity (%s mode)', (mode) => {
  it('keeps each client on one endpoint until the timeout, then balances again', async () => {
    const dp = await dataplaneFor({});
    expect(applyIn(dp, mode, manifests).issues).toEqual([]);
    let port = 10000;
    const round = (now: number) => clients.map((c) => {
      const seen = runCase(dp, flow(c), (port += 10), now);
      expect(seen).toHaveLength(1);   // every connection of the round: one endpoint
      return seen[0]!;
    });
    const first = round(1000);
    expect(new Set(first).size).toBeGreaterThan(1);          // clients spread over endpoints
    // Exactly 10 s after the last stamp: kept (xt_recent, direct); IPVS's template timer, re-armed
    // to now + timeout on each use (ip_vs_conn_put), has fired by then, so 1 ms earlier there.
    const edge = mode === 'ipvs' ? 1 : 0;
    expect(round(11000 - edge)).toEqual(first);
    const later = round(21001 + 10000);                      // 10 s + 1 ms past the last stamp
    expect(later.some((ep, i) => ep !== first[i])).toBe(true);
    expect(round(31001 + 10000 - edge)).toEqual(later);             // and sticky again
  });

  it('keeps the endpoint across an update that keeps it', async () => {
    const dp = await dataplaneFor({});
    applyIn(dp, mode, manifests);
    const before = runCase(dp, flow('198.19.9.50'), 11000, 1000);
    expect(before).toHaveLength(1);
    const kept = before[0]!.split(':')[0]!;
    const others = ['198.19.1.1', '198.19.1.2', '198.19.1.3'].filter((ip) => ip !== kept);
    // One other endpoint leaves, one joins.
    applyIn(dp, mode, docs(
      service('sticky', { clusterIP: '198.18.0.70', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } }, ports: http }),
      slice('sticky', [{ ip: kept }, { ip: others[0]! }, { ip: '198.19.1.4' }], http),
    ));
    expect(runCase(dp, flow('198.19.9.50'), 12000, 2000)).toEqual(before);
  });
});

// IPVS's trace names the scheduler's next pick or the persistence template (tests/host-node/ipvs):
// a fresh client has one outcome there, not the three balanced ones.
describe.each(['iptables', 'direct'] as const)('the trace of a sticky client (%s mode)', (mode) => {
  it('traces a client with a fresh stamp to its endpoint alone, and balances it again once the stamp is old', async () => {
    const dp = await dataplaneFor({});
    applyIn(dp, mode, manifests);
    const q = { src: '198.19.9.60', dst: '198.18.0.70', proto: 'tcp' as const, dport: 80 };
    const fresh = dp.trace({ ...q, nowMs: 500 });
    expect(fresh.outcomes.map((o) => o.to).sort()).toEqual(['198.19.1.1:8080', '198.19.1.2:8080', '198.19.1.3:8080']);
    const seen = runCase(dp, flow(q.src), 13000, 1000);
    expect(seen).toHaveLength(1);
    const sticky = dp.trace({ ...q, nowMs: 6000 });
    expect(sticky.outcomes.map((o) => [o.to?.split(':')[0], o.probability])).toEqual([[seen[0]!.split(':')[0], 1]]);
    // The trace only reads the stamp: it is as old as before, and 10 s + 1 ms after it, gone.
    expect(dp.trace({ ...q, nowMs: 11000 }).outcomes).toHaveLength(1);
    expect(dp.trace({ ...q, nowMs: 11001 }).outcomes).toHaveLength(3);
  });
});
