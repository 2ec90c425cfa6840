// fixture.ts — test helper: loads a YAML fixture (objects + "# options: {json}" header), runs it
// through the whole control plane (manifests → ProxyState trackers → model → iptables renderer);
// modelOf gives the model of any object set for the other renderers' tests.
import { readFileSync } from 'node:fs';
import { parseManifests, ProxyState, renderIptables, type IptablesOptions, type ManifestSet, type ProxyModel } from '../../../host-node/kube/index.js';

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

/** One family's model after a first full sync of `set` (which must hold no errors) on node `nodeName`. */
export function modelOf(set: ManifestSet, nodeName: string, family: 4 | 6 = 4): ProxyModel {
  const errors = set.issues.filter((i) => i.severity === 'error');
  if (errors.length) throw new Error(`objects with errors: ${JSON.stringify(errors)}`);
  const state = new ProxyState({ nodeName, families: [family] });
  for (const s of set.services) state.onService(null, s);
  for (const s of set.endpointSlices) state.onEndpointSlice(s);
  state.markServicesSynced();
  state.markEndpointSlicesSynced();
  return state.sync()[0]!.model;
}

/** Full-sync render of one fixture for IPv4 (every corpus case is IPv4). */
export function renderFixture(f: Fixture, family: 4 | 6 = 4): string {
  return renderIptables(modelOf(f.set, f.options.nodeName ?? '', family), f.options).text;
}
