// kube-proxy's IPVS-mode unit tests, replayed against svcplane's ipvs mode: each case's Services and
// EndpointSlices and fake-proxier settings (kube-proxy-ipvs/*.json, transcribed from
// pkg/proxy/ipvs/proxier_test.go) go through dp.apply({ mode: 'ipvs' }), and what kube-proxy's test
// asserts about the result is asserted of svcplane's tables, read back the way an operator reads
// them: the virtual servers and real servers from `ipvsadm -Sn`, the ipset members from
// `ipset save`, the chains from `iptables -S`. The Go checks are followed where they are partial:
// ipsets and chains are compared exactly for the sets and chains a test names (a chain by each
// rule's jump target and --match-set, as checkIptables compares them); the virtual servers are
// compared as a whole where the test compares the fake's whole state (weights where it names them),
// else as checkIPVS does: the number of virtual servers, and for each one named that exists, its
// real servers. Cases whose Go test asserts nothing structural (only notes) are kept in the data
// but not run. A few Go tests build objects the API server refuses (a Service port without a port,
// an EndpointSlice without an addressType); the fake takes them, svcplane refuses them naming the
// field, which those cases assert instead.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Dataplane } from '../../host-node/index.js';
import { ipvsSetName } from '../../host-node/kube/index.js';

interface Dest { address: string; port: number; weight?: number }
interface VirtualServer { address: string; protocol: 'TCP' | 'UDP' | 'SCTP'; port: number; scheduler: string; timeout?: number; dests: Dest[] }
interface SetEntry { ip?: string; port?: number; protocol?: string; ip2?: string; net?: string; setType?: string }
interface ChainRule { target: string; matchSet?: string }
interface IpvsCase {
  name: string;
  family: 4 | 6;
  proxier: {
    nodeIPs: string[]; nodePortAddresses?: string[]; scheduler?: string; masqueradeAll?: boolean; localDetectorCIDR?: string | null;
    other?: { networkInterfacer?: Record<string, string[]>; featureGates?: Record<string, boolean> };
  };
  objects: object[];
  expect: {
    services?: VirtualServer[]; servicesComplete?: boolean; vsNum?: number; everyTimeout?: number;
    ipsets?: Record<string, SetEntry[]>; ipsetsComplete?: boolean;
    iptables?: Record<string, ChainRule[]>;
  };
}
interface IpvsFile { test: string; cases: IpvsCase[] }

const DIR = new URL('./kube-proxy-ipvs/', import.meta.url);
const files: IpvsFile[] = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort()
  .map((f) => JSON.parse(readFileSync(new URL(f, DIR), 'utf8')) as IpvsFile);

const checkable = (c: IpvsCase): boolean =>
  (c.expect.services?.length ?? 0) > 0 || c.expect.vsNum !== undefined || c.expect.everyTimeout !== undefined || Object.keys(c.expect.ipsets ?? {}).length > 0 || Object.keys(c.expect.iptables ?? {}).length > 0;

/** The fake's interface addresses (networkInterfacer), or the node IPs the test gives. */
const hostAddresses = (c: IpvsCase): string[] => {
  const ifs = c.proxier.other?.networkInterfacer;
  return ifs ? Object.values(ifs).flat().map((a) => a.split('/')[0]!) : c.proxier.nodeIPs;
};

/** Go tests whose objects the API server would refuse: the field svcplane names for each refusal. */
const INVALID: Record<string, string[]> = {
  TestAcceptIPVSTraffic: ['addressType', 'addressType', 'addressType'],
  TestEndpointSliceE2E: ['spec.ports[0].port'],
  TestHealthCheckNodePortE2E: ['spec.ports[0].port'],
  TestTestInternalTrafficPolicyE2E: ['spec.ports[0].port'],
};

async function applyCase(c: IpvsCase, refused: string[] = []): Promise<Dataplane> {
  const hosts = hostAddresses(c);
  const dp = await Dataplane.create({ nodeIPs: hosts, seed: 7 });
  const cidr = c.proxier.localDetectorCIDR ?? null;
  const shared = {
    ...(c.proxier.nodePortAddresses ? { nodePortAddresses: c.proxier.nodePortAddresses } : {}),
    ...(c.proxier.masqueradeAll !== undefined ? { masqueradeAll: c.proxier.masqueradeAll } : {}),
    localDetector: cidr === null ? { mode: 'none' as const } : { mode: 'cidr' as const, cidr },
  };
  const r = dp.apply(c.objects, {
    mode: 'ipvs', nodeName: 'test-node',
    iptables: shared,
    ipvs: { nodeName: 'test-node', nodeIPs: hosts, hostAddresses: hosts, scheduler: c.proxier.scheduler ?? 'rr', ...shared },
  });
  expect(r.issues.map((i) => i.path)).toEqual(refused);
  return dp;
}

/** `ipvsadm -Sn` as virtual servers with their real servers. */
function virtualServers(dp: Dataplane): VirtualServer[] {
  const out: VirtualServer[] = [];
  const split = (hp: string): [string, number] => {
    const i = hp.lastIndexOf(':');
    return [hp.slice(0, i).replace(/^\[|\]$/g, ''), Number(hp.slice(i + 1))];
  };
  const PROTO: Record<string, VirtualServer['protocol']> = { '-t': 'TCP', '-u': 'UDP', '--sctp-service': 'SCTP' };
  for (const line of dp.ipvsadm(['-Sn']).stdout.split('\n')) {
    const w = line.trim().split(/\s+/);
    if (w[0] === '-A') {
      const [address, port] = split(w[2]!);
      const p = w.indexOf('-p');
      out.push({ address, protocol: PROTO[w[1]!]!, port, scheduler: w[w.indexOf('-s') + 1]!, ...(p > 0 ? { timeout: Number(w[p + 1]) } : {}), dests: [] });
    } else if (w[0] === '-a') {
      const [address, port] = split(w[w.indexOf('-r') + 1]!);
      out.at(-1)!.dests.push({ address, port, weight: Number(w[w.indexOf('-w') + 1]) });
    }
  }
  return out;
}

const vsKey = (v: Pick<VirtualServer, 'address' | 'protocol' | 'port'>) => `${v.protocol} ${v.address}:${v.port}`;
const destKey = (d: Dest, weight: boolean) => `${d.address}:${d.port}${weight && d.weight !== undefined ? ` w${d.weight}` : ''}`;

/** An expected ipset entry as `ipset save` writes it. */
function entryText(e: SetEntry): string {
  if (e.ip === undefined) return String(e.port);   // bitmap:port
  const base = `${e.ip},${e.protocol ?? 'tcp'}:${e.port}`;
  return e.ip2 !== undefined ? `${base},${e.ip2}` : e.net !== undefined ? `${base},${e.net}` : base;
}

function setMembers(dp: Dataplane, name: string): string[] {
  const prefix = `add ${name} `;
  return dp.ipset.save().split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length)).sort();
}

/** A chain's rules as checkIptables compares them: jump target and --match-set name. */
function chainRules(dp: Dataplane, family: 4 | 6, table: 'nat' | 'filter', chain: string): ChainRule[] {
  return dp.iptablesRules(table, chain, { family }).split('\n').filter((l) => l.startsWith('-A '))
    .map((l) => ({ target: / -j (\S+)/.exec(l)?.[1] ?? '', matchSet: / --match-set (\S+)/.exec(l)?.[1] ?? '' }));
}

describe('kube-proxy ipvs proxier tests', () => {
  it('are present, and most cases assert something svcplane can be held to', () => {
    expect(files.length).toBeGreaterThanOrEqual(20);
    const cases = files.flatMap((f) => f.cases);
    expect(cases.filter(checkable).length).toBeGreaterThanOrEqual(20);
  });
});

for (const file of files) {
  const cases = file.cases.filter(checkable);
  if (cases.length === 0) continue;
  describe(file.test, () => {
    for (const c of cases) {
      const refused = INVALID[file.test];
      if (refused) {
        it(`${c.name} (IPv${c.family}): objects the API server refuses are refused, naming the field`, async () => {
          await applyCase(c, refused);
        });
        continue;
      }
      it(`${c.name} (IPv${c.family})`, async () => {
        const dp = await applyCase(c);
        const e = c.expect;
        const have = virtualServers(dp).filter((v) => v.address.includes(':') === (c.family === 6));
        if (e.vsNum !== undefined) expect(have.length, 'virtual servers').toBe(e.vsNum);
        if (e.everyTimeout !== undefined) expect(have.length).toBeGreaterThan(0);
        if (e.everyTimeout !== undefined) for (const v of have) expect(v.timeout, `${vsKey(v)} persistence`).toBe(e.everyTimeout);
        if (e.services) {
          const weights = e.services.every((v) => v.dests.every((d) => d.weight !== undefined));
          const dests = (v: VirtualServer) => v.dests.map((d) => destKey(d, weights)).sort();
          if (e.servicesComplete) {
            const view = (vs: VirtualServer[]) => vs.map((v) => `${vsKey(v)} ${v.scheduler} → ${dests(v).join(' ')}`).sort();
            expect(view(have)).toEqual(view(e.services));
          } else {
            for (const want of e.services) {
              const got = have.find((v) => vsKey(v) === vsKey(want));
              if (got) expect(dests(got), vsKey(want)).toEqual(dests(want));
            }
          }
        }
        for (const [name, entries] of Object.entries(e.ipsets ?? {})) {
          expect(setMembers(dp, ipvsSetName(name, c.family)), name).toEqual(entries.map(entryText).sort());
        }
        for (const [key, rules] of Object.entries(e.iptables ?? {})) {
          const [table, chain] = key.split('/') as ['nat' | 'filter', string];
          expect(chainRules(dp, c.family, table, chain), key).toEqual(rules.map((r) => ({ target: r.target, matchSet: r.matchSet ?? '' })));
        }
      });
    }
  });
}
