// kube-proxy's packet-flow tests whose rules kube-proxy generates at test time (MISSING.md of the
// corpus: TestInternalExternalMasquerade, TestNodePorts, the traffic-policy and terminating-endpoint
// tests, …), replayed end to end: each case's Services and EndpointSlices (kube-proxy-flows/*.json,
// transcribed from the Go test's objects and proxier settings) go through dp.apply — svcplane's
// own control plane and kube-proxy renderer — into the iptables engine, and every flow is traced
// and read the way kube-proxy's test tracer answers (kube-proxy-harness.ts tracerAnswer), so the
// expectations kube-proxy holds its own rule generator to hold for svcplane's. A case with `then`
// deletes objects through a watch-style delta and traces the flows kube-proxy traces after its
// re-sync. The same flows also run in the direct mode, whose service table must reach the same
// endpoints with the same masquerade decisions (its trace has no rules, so the answer is read
// from the outcomes only).
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Dataplane, type ApplyOptions, type TraceResult } from '../../host-node/index.js';
import { tracerAnswer, type CorpusFlow } from './kube-proxy-harness.js';

interface FlowCase {
  name: string;
  family: 4 | 6;
  options?: { masqueradeAll?: boolean; localDetector?: { mode: 'none' }; localhostNodePorts?: boolean; nodePortAddresses?: string[] };
  objects?: object[];
  flows: Flow[];
  then?: { removed: string[]; flows: Flow[] };
  firewall?: string;
}
type Flow = CorpusFlow & { protocol: 'tcp' | 'udp' | 'sctp' };
interface FlowFile { test: string; provenance: { upstreamRepo: string; commit: string; path: string }; objects?: object[]; cases: FlowCase[] }

const DIR = new URL('./kube-proxy-flows/', import.meta.url);
const files: FlowFile[] = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort()
  .map((f) => JSON.parse(readFileSync(new URL(f, DIR), 'utf8')) as FlowFile);

// The Go fake proxier (NewFakeProxier): its node, the addresses on its interfaces (lo and eth0,
// which the tracer counts as LOCAL), its local-traffic detector per family and its mark text.
const NODE = 'test-node';
const LOOPBACK = ['127.0.0.1', '::1'];
const NODE_ADDRS = ['192.168.0.2', '192.168.1.2', '192.168.99.11', '2001:db8::1', '2001:db8:1::2'];
const POD_CIDRS = '10.0.0.0/8,fd00:10::/64';
const MARK = 0x4000;
// A masquerade source no flow uses, so that a masquerade always shows as a changed source.
const MASQUERADE_IPS = ['198.18.0.1', 'fd00:198:18::1'];
// The tracer starts at nat PREROUTING and runs these filter chains (corpus README rules 10 and 12).
const START = { nat: ['PREROUTING'], filter: ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL'] };

function applyOptions(mode: 'iptables' | 'direct', c: FlowCase): ApplyOptions {
  const o = c.options ?? {};
  return {
    mode, nodeName: NODE,
    iptables: {
      era: 'current', nodeName: NODE, nodeIPs: ['192.168.0.2', '2001:db8::1'], hostAddresses: [...LOOPBACK, ...NODE_ADDRS],
      localDetector: o.localDetector ?? { mode: 'cidr', cidr: POD_CIDRS }, masqueradeMark: '0x4000',
      ...(o.masqueradeAll !== undefined ? { masqueradeAll: o.masqueradeAll } : {}),
      ...(o.localhostNodePorts !== undefined ? { localhostNodePorts: o.localhostNodePorts } : {}),
      ...(o.nodePortAddresses !== undefined ? { nodePortAddresses: o.nodePortAddresses } : {}),
    },
  };
}

async function dataplane(mode: 'iptables' | 'direct', c: FlowCase, objects: object[]): Promise<Dataplane> {
  // The direct mode's local-traffic detector is the Dataplane's pod CIDR; without one (kube-proxy's
  // NoOpLocalDetector) it has none.
  const none = c.options?.localDetector?.mode === 'none';
  const dp = await Dataplane.create({
    nodeIPs: NODE_ADDRS, masqueradeIPs: MASQUERADE_IPS, seed: 0x6b7078, conntrackCapacity: 256,
    ...(mode === 'direct' && !none ? { podCIDR: POD_CIDRS.split(',') } : {}),
  });
  const r = dp.apply(objects, applyOptions(mode, c));
  expect(r.issues).toEqual([]);
  return dp;
}

const trace = (dp: Dataplane, f: Flow): TraceResult => {
  const local = LOOPBACK.includes(f.sourceIP) || NODE_ADDRS.includes(f.sourceIP);
  const r = dp.trace({ src: f.sourceIP, dst: f.destIP, proto: f.protocol, sport: 40000, dport: f.destPort, from: local ? 'local' : 'external' });
  expect(r.truncated).toBe(false);
  expect(r.outcomes.reduce((a, o) => a + o.probability, 0)).toBeCloseTo(1, 9);
  return r;
};

/**
 * The direct mode's answer in the tracer's terms: the endpoints reached (kube-proxy's rule order is
 * the endpoints' "ip:port" order, which a service table has no reason to keep, so both sides are
 * compared sorted), REJECT / DROP where the packet was refused, and whether it was masqueraded. A
 * packet no Service took is "" — also where kube-proxy's tracer says ACCEPT, which only its health
 * check node-port rule answers (the port is delivered to the node either way).
 */
function directAnswer(r: TraceResult): { output: string; masq: boolean } {
  const to = [...new Set(r.outcomes.flatMap((o) => (o.to === undefined ? [] : [o.to])))].sort();
  const refused = r.outcomes.find((o) => o.verdict === 'DROP' || o.verdict === 'REPLY');
  if (refused && to.length > 0) throw new Error('some outcomes were refused and others reached an endpoint');
  const output = refused ? (refused.verdict === 'REPLY' ? 'REJECT' : 'DROP') : to.join(', ');
  return { output, masq: r.outcomes.some((o) => o.masq) };
}

const sortedOutput = (output: string): string => (output === 'ACCEPT' ? '' : output.split(', ').sort().join(', '));

const listed = (dp: Dataplane, family: 4 | 6): string[] =>
  dp.iptablesRules('filter', 'KUBE-FIREWALL', { family }).split('\n').filter((l) => l.startsWith('-A '));

/** The rules of `text` (KUBE-FIREWALL lines as kube-proxy writes them) as `iptables -S` lists them. */
async function canonical(text: string, family: 4 | 6): Promise<string[]> {
  const dp = await Dataplane.create({ nodeIPs: NODE_ADDRS });
  dp.iptablesRestore(`*filter\n:KUBE-FIREWALL - [0:0]\n${text}${text ? '\n' : ''}COMMIT\n`, { family });
  return listed(dp, family);
}

const flowTitle = (f: Flow) => `${f.name}: ${f.sourceIP} → ${f.destIP}:${f.destPort}/${f.protocol} ⇒ ${JSON.stringify(f.output)}${f.masq ? ' masq' : ''}`;

function checkIptables(dp: Dataplane, f: Flow, when = ''): void {
  const r = trace(dp, f);
  expect.soft(tracerAnswer(r, { masqueradeMark: MARK, startChains: START }), `${when}${flowTitle(f)}`).toEqual({ output: f.output, masq: f.masq });
  // The first leaf's masquerade agrees with whether one of its rules jumped to KUBE-MARK-MASQ.
  const first = r.outcomes[0]!;
  expect.soft(first.masq || (first.mark & MARK) !== 0, `${when}${flowTitle(f)}: first leaf`).toBe(r.steps.some((st) => st.matched && st.target === 'jump KUBE-MARK-MASQ'));
}

describe('kube-proxy generated-rule flow tests', () => {
  it('are all present: 11 Go tests, 239 flows', () => {
    expect(files.map((f) => f.test)).toHaveLength(11);
    const flows = files.reduce((n, f) => n + f.cases.reduce((m, c) => m + c.flows.length + (c.then?.flows.length ?? 0), 0), 0);
    expect(flows).toBe(239);
  });
});

for (const file of files) {
  describe(file.test, () => {
    for (const c of file.cases) {
      const objects = c.objects ?? file.objects ?? [];
      const cname = `${c.name} (IPv${c.family})`;

      it(`${cname}, iptables mode: every flow as kube-proxy's tracer answers`, async () => {
        const dp = await dataplane('iptables', c, objects);
        for (const f of c.flows) checkIptables(dp, f);
        if (c.firewall !== undefined) expect(listed(dp, c.family)).toEqual(await canonical(c.firewall, c.family));
        if (c.then) {
          dp.apply([], { ...applyOptions('iptables', c), delta: { removed: c.then.removed } });
          for (const f of c.then.flows) checkIptables(dp, f, `after ${c.then.removed.join(', ')}: `);
        }
      });

      it(`${cname}, direct mode: the same endpoints and masquerade`, async () => {
        const dp = await dataplane('direct', c, objects);
        // A cluster IP's port or protocol no Service has: the iptables rules let it through (""),
        // the direct mode rejects it, as kube-proxy's nftables mode does (its TestClusterIPGeneral).
        type Obj = { kind?: string; metadata?: { name?: string; namespace?: string }; spec?: { clusterIP?: string; clusterIPs?: string[] } };
        const vipsOf = (removed: string[]) => new Set((objects as Obj[]).flatMap((o) => {
          if (o.kind !== 'Service' || removed.includes(`Service ${o.metadata?.namespace ?? 'default'}/${o.metadata?.name}`)) return [];
          return [o.spec?.clusterIP, ...(o.spec?.clusterIPs ?? [])].filter((x): x is string => !!x);
        }));
        const check = (f: Flow, when: string, vips: Set<string>) => {
          const got = directAnswer(trace(dp, f));
          const output = f.output === '' && vips.has(f.destIP) ? 'REJECT' : f.output;
          expect.soft({ output: sortedOutput(got.output), masq: got.masq }, `${when}${flowTitle(f)}`).toEqual({ output: sortedOutput(output), masq: f.masq });
        };
        for (const f of c.flows) check(f, '', vipsOf([]));
        if (c.then) {
          dp.apply([], { ...applyOptions('direct', c), delta: { removed: c.then.removed } });
          for (const f of c.then.flows) check(f, `after ${c.then.removed.join(', ')}: `, vipsOf(c.then.removed));
        }
      });
    }
  });
}
