// fixture.ts — test helper: loads a YAML fixture (objects + "# options: {json}" header), runs it
// through the whole control plane (manifests → ProxyState trackers → model → iptables renderer).
import { readFileSync } from 'node:fs';
import { parseManifests, ProxyState, renderIptables, type IptablesOptions, type ManifestSet } from '../../../host-node/kube/index.js';

export const FIXTURES = new URL('./fixtures/', import.meta.url);
export const CORPUS = new URL(process.env.SVCPLANE_CONFORMANCE ?? '../../../../shared/conformance/kube-proxy-iptables/', import.meta.url);

export interface Fixture {
  options: IptablesOptions;
  set: ManifestSet;
}

export function readFixture(name: string): Fixture {
  const text = readFileSync(new URL(name, FIXTURES), 'utf8');
  const m = /^# options: (.*)$/m.exec(text);
  if (!m) throw new Error(`${name}: no "# options:" header`);
  return { options: JSON.parse(m[1]!) as IptablesOptions, set: parseManifests(text, name) };
}

/** Full-sync render of one fixture for IPv4 (every corpus case is IPv4). */
export function renderFixture(f: Fixture, family: 4 | 6 = 4): string {
  const errors = f.set.issues.filter((i) => i.severity === 'error');
  if (errors.length) throw new Error(`fixture has errors: ${JSON.stringify(errors)}`);
  const state = new ProxyState({ nodeName: f.options.nodeName ?? '', families: [family] });
  for (const s of f.set.services) state.onService(null, s);
  for (const s of f.set.endpointSlices) state.onEndpointSlice(s);
  state.markServicesSynced();
  state.markEndpointSlicesSynced();
  const [plan] = state.sync();
  return renderIptables(plan!.model, f.options, { changedServices: plan!.changedServices }).text;
}
