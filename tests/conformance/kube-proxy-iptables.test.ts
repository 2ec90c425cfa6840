// kube-proxy's own packet-flow tests, replayed against svcplane's iptables mode: every flow of
// every file in ../shared/conformance/kube-proxy-iptables (27 files, 81 flows; the folder can be
// moved with $SVCPLANE_CONFORMANCE, and the suite fails when it is missing). Each file's ruleset
// is loaded exactly as stored, kube-proxy's base-chain jumps for that era are added the way its
// startup adds them, and each flow is traced through the public Dataplane.trace() with kernel
// semantics; the trace is then read the way kube-proxy's simplified test tracer answers
// (kube-proxy-harness.ts tracerAnswer, README "Tracer semantics").
//
// How a flow becomes a packet:
// * Direction: a flow whose source is one of the tracer's LOCAL addresses (the node IP or
//   loopback) is sent by the node itself (nat/filter OUTPUT), as such a packet is in a kernel
//   (one arriving from outside with a local source is a martian); every other flow arrives from
//   outside (PREROUTING). The tracer always starts at nat PREROUTING (README rule 10); kube-proxy
//   jumps OUTPUT to the same KUBE-SERVICES, so the nat result is the same.
// * Protocol: tracer v2 flows carry theirs. Tracer v1 never compared `-p` (README v1-a), so its
//   flows are sent with the protocol of the Service they address (harness serviceProtocol), e.g.
//   sctp for TestClusterIPEndpointsMore.
// * A new connection: a TCP SYN (or the first UDP/SCTP packet) from port 40000 with an empty
//   conntrack table, which is what the tracer's "--ctstate never matches" models (README rule 5).
import { describe, it, expect, beforeAll } from 'vitest';
import { Dataplane } from '../../host-node/index.js';
import {
  corpusRoot, loadIptablesCorpus, JUMP_CHAINS_BY_COMMIT, jumpRestoreText, liveTable, serviceProtocol,
  tracerAnswer, isLoopback, type CorpusFile,
} from './kube-proxy-harness.js';

const corpus = loadIptablesCorpus();
// A masquerade source no corpus flow uses, so that a masquerade always shows as a changed source.
const MASQUERADE_IP = '198.18.0.1';

describe('kube-proxy iptables conformance corpus', () => {
  it(`is present at ${corpusRoot()} with 27 files and 81 flows`, () => {
    expect(corpus.length).toBe(27);
    expect(corpus.reduce((n, f) => n + f.flows.length, 0)).toBe(81);
    for (const f of corpus) expect(JUMP_CHAINS_BY_COMMIT[f.provenance.commit], `${f.file}: era`).toBeDefined();
  });
});

async function loadFile(doc: CorpusFile): Promise<Dataplane> {
  const dp = await Dataplane.create({
    nodeIPs: doc.tracer.localIPs.filter((ip) => !isLoopback(ip)),
    masqueradeIPs: [MASQUERADE_IP],
    seed: 0x6b7078,
    conntrackCapacity: 256,
  });
  dp.iptablesRestore(doc.ruleset);
  const jumps = jumpRestoreText(JUMP_CHAINS_BY_COMMIT[doc.provenance.commit]!, {
    filter: liveTable(dp.iptablesRules('filter')),
    nat: liveTable(dp.iptablesRules('nat')),
  });
  if (jumps) dp.iptablesRestore(jumps, { noflush: true });
  return dp;
}

for (const doc of corpus) {
  describe(doc.file.replace(/\.json$/, ''), () => {
    let dp: Dataplane;
    beforeAll(async () => {
      dp = await loadFile(doc);
    });

    it('has kube-proxy\'s base-chain jumps, each once, last prepended first', () => {
      // The corpus lists the subset of jumps the Go fake had (README rule 1); the era's full
      // jump list must include each of them, as `iptables -S` prints it.
      for (const ir of doc.implicitRules) {
        expect([...liveTable(dp.iptablesRules(ir.table as 'nat' | 'filter', ir.chain)).rules], ir.rule).toContain(ir.rule);
      }
      const targets = (table: 'nat' | 'filter', chain: string) =>
        [...liveTable(dp.iptablesRules(table, chain)).rules].map((r) => / -j (\S+)$/.exec(r)?.[1]);
      expect(targets('filter', 'INPUT')).toEqual(['KUBE-FIREWALL', 'KUBE-PROXY-FIREWALL', 'KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES']);
      expect(targets('filter', 'FORWARD')).toEqual(['KUBE-PROXY-FIREWALL', 'KUBE-FORWARD', 'KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES']);
      expect(targets('filter', 'OUTPUT')).toEqual(['KUBE-FIREWALL', 'KUBE-PROXY-FIREWALL', 'KUBE-SERVICES']);
      expect(targets('nat', 'PREROUTING')).toEqual(['KUBE-SERVICES']);
      expect(targets('nat', 'OUTPUT')).toEqual(['KUBE-SERVICES']);
      expect(targets('nat', 'POSTROUTING')).toEqual(['KUBE-POSTROUTING']);
    });

    if (doc.flows.length === 0) {
      it('is a ruleset-only file whose ruleset loads with the jumps', () => {
        expect(dp.iptablesRules('nat', 'PREROUTING')).toContain('-j KUBE-SERVICES');
      });
    }

    for (const flow of doc.flows) {
      it(`${flow.name}: ${flow.sourceIP} → ${flow.destIP}:${flow.destPort} ⇒ ${JSON.stringify(flow.output)}${flow.masq ? ' masq' : ''}`, () => {
        const proto = flow.protocol ?? serviceProtocol(doc.ruleset, flow);
        const local = doc.tracer.localIPs.includes(flow.sourceIP);
        const r = dp.trace({ src: flow.sourceIP, dst: flow.destIP, proto, sport: 40000, dport: flow.destPort, from: local ? 'local' : 'external' });
        expect(r.truncated).toBe(false);
        const sum = r.outcomes.reduce((a, o) => a + o.probability, 0);
        expect(sum).toBeCloseTo(1, 9);
        const mark = Number(doc.masqueradeMark);
        const got = tracerAnswer(r, { masqueradeMark: mark, startChains: doc.tracer.startChains });
        expect(got).toEqual({ output: flow.output, masq: flow.masq });
        // The masq reading is exact: on the first leaf (whose steps the trace lists) it agrees
        // with whether a rule jumped to KUBE-MARK-MASQ.
        const first = r.outcomes[0]!;
        const marked = r.steps.some((st) => st.matched && st.target === 'jump KUBE-MARK-MASQ');
        expect(first.masq || (first.mark & mark) !== 0).toBe(marked);
      });
    }
  });
}
