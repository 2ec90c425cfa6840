// The form editor's model: it reads every preset's Services, ports, policies and endpoints from
// the YAML, each edit changes exactly the objects it names (the rest of the text stays as
// written), conditions stay consistent, and the edited text means to the control plane what the
// form said (traced through the playground engine).
import { describe, it, expect } from 'vitest';
import { parseManifests } from '../../host-node/kube/index.js';
import { applyFormEdit, formEdit, readFormModel, DEFAULT_AFFINITY_SECONDS, type FormEdit } from '../../host-browser/src/ui/objects-model.js';
import { editsFromText, editsText, withService } from '../../host-browser/src/ui/scene-edits.js';
import { Playground } from '../../host-browser/src/engine/playground.js';
import { PRESETS, presetById, type PacketSpec } from '../../host-browser/src/presets.js';
import type { WirePacket } from '../../host-browser/src/engine/outcomes.js';

const wire = (p: PacketSpec): WirePacket => ({ src: p.src, dst: p.dst, proto: p.proto, sport: p.sport, dport: p.dport, local: p.from === 'node' });
const yamlOf = (id: string) => presetById(id)!.yaml!;

async function outcomes(yaml: string, p: WirePacket): Promise<string[]> {
  const pg = new Playground();
  const r = await pg.load({ source: { yaml }, mode: 'iptables', scheduler: 'rr', fresh: true });
  expect(r.issues).toEqual([]);
  return pg.packet(p, 0, false).trace.outcomes.map((o) => o.key).sort();
}

describe('form model', () => {
  it('reads every editable preset as the control plane does', () => {
    for (const preset of PRESETS.filter((p) => p.yaml !== undefined)) {
      const m = readFormModel(preset.yaml!);
      const set = parseManifests(preset.yaml!);
      expect(m.error, preset.id).toBeUndefined();
      expect(m.services.map((s) => s.key)).toEqual(set.services.map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
      for (const s of m.services) {
        const svc = set.services.find((x) => `${x.metadata.namespace}/${x.metadata.name}` === s.key)!;
        expect(s.clusterIP).toBe(svc.spec.clusterIP);
        expect(s.ports.map((p) => [p.port, p.protocol])).toEqual(svc.spec.ports.map((p) => [p.port, p.protocol]));
        const eps = set.endpointSlices.flatMap((sl) => sl.endpoints);
        expect(s.endpoints.map((e) => e.address)).toEqual(eps.map((e) => e.addresses[0]));
      }
    }
    const nodeport = readFormModel(yamlOf('nodeport-local')).services[0]!;
    expect(nodeport).toMatchObject({ type: 'NodePort', externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Cluster' });
    expect(nodeport.ports[0]).toMatchObject({ name: 'http', port: 80, targetPort: 8080, nodePort: 30080 });
    expect(readFormModel(yamlOf('affinity')).services[0]).toMatchObject({ sessionAffinity: 'ClientIP', affinitySeconds: 60 });
    expect(readFormModel(yamlOf('terminating')).services[0]!.endpoints.map((e) => [e.ready, e.serving, e.terminating]))
      .toEqual([[false, true, true], [false, true, true], [false, false, true]]);
  });

  it('a broken text gives an error and edits leave it alone', () => {
    const bad = 'kind: Service\nspec: [unclosed\n';
    expect(readFormModel(bad).error).toBeTruthy();
    expect(applyFormEdit(bad, { op: 'add-service' })).toBe(bad);
  });

  it('toggling an endpoint terminating changes only its conditions, and the trace stops using it', async () => {
    const yaml = yamlOf('clusterip');
    const ep = readFormModel(yaml).services[0]!.endpoints[1]!;
    const edited = applyFormEdit(yaml, { op: 'condition', service: 'default/web', slice: ep.slice, index: ep.index, condition: 'terminating', value: true });
    const before = yaml.split('\n'), after = edited.split('\n');
    expect(after.length).toBe(before.length);
    const changed = after.map((l, i) => [before[i], l]).filter(([a, b]) => a !== b);
    expect(changed).toEqual([['    conditions: {ready: true}', '    conditions: {ready: false, serving: true, terminating: true}']]);
    const p = wire(presetById('clusterip')!.packet);
    expect(await outcomes(edited, p)).toEqual(['FORWARD → 10.244.1.11:8080', 'FORWARD → 10.244.1.13:8080']);
    // Ready again: serving, not terminating, all three pods.
    const back = applyFormEdit(edited, { op: 'condition', service: 'default/web', slice: ep.slice, index: ep.index, condition: 'ready', value: true });
    expect(readFormModel(back).services[0]!.endpoints[1]).toMatchObject({ ready: true, serving: true, terminating: false });
    expect(await outcomes(back, p)).toHaveLength(3);
  });

  it('adds a Service with endpoints and an endpoint to a Service, on free addresses', async () => {
    const yaml = yamlOf('clusterip');
    const two = applyFormEdit(yaml, { op: 'add-service' });
    expect(two.startsWith(yaml.trimEnd())).toBe(true);
    const m = readFormModel(two);
    expect(m.services.map((s) => s.key)).toEqual(['default/web', 'default/app-1']);
    const app = m.services[1]!;
    expect(app.endpoints.map((e) => e.node)).toEqual(['node-a', 'node-b']);
    const taken = m.services[0]!.endpoints.map((e) => e.address);
    for (const e of app.endpoints) expect(taken).not.toContain(e.address);
    expect(parseManifests(two).issues).toEqual([]);
    const p: WirePacket = { src: '10.244.1.5', dst: app.clusterIP, proto: 'tcp', sport: 40000, dport: 80, local: false };
    expect(await outcomes(two, p)).toEqual(app.endpoints.map((e) => `FORWARD → ${e.address}:8080`).sort());
    const three = applyFormEdit(two, { op: 'add-endpoint', service: 'default/app-1' });
    const added = readFormModel(three).services[1]!.endpoints;
    expect(added).toHaveLength(3);
    expect(new Set(added.map((e) => e.address)).size).toBe(3);
    expect(await outcomes(three, p)).toHaveLength(3);
    // Removing the Service removes its slice too.
    expect(applyFormEdit(three, { op: 'remove-service', service: 'default/app-1' }).trim()).toBe(yaml.trim());
  });

  it('adds endpoints to a Service whose slice is empty, and REJECT turns into a pod', async () => {
    const yaml = yamlOf('no-endpoints');
    const p = wire(presetById('no-endpoints')!.packet);
    const ep = readFormModel(yaml).services[0]!.endpoints[0]!;
    const removed = applyFormEdit(yaml, { op: 'remove-endpoint', service: 'default/ghost', slice: ep.slice, index: ep.index });
    expect(readFormModel(removed).services[0]!.endpoints).toEqual([]);
    expect(parseManifests(removed).issues).toEqual([]);
    const one = applyFormEdit(removed, { op: 'add-endpoint', service: 'default/ghost' });
    const [added] = readFormModel(one).services[0]!.endpoints;
    expect(added).toMatchObject({ ready: true, node: 'node-a' });
    expect(await outcomes(one, p)).toEqual([`FORWARD → ${added!.address}:8080`]);
  });

  it('session affinity, traffic policies, type and ports edit the Service spec (and the slice ports follow)', async () => {
    const yaml = yamlOf('clusterip');
    let y = applyFormEdit(yaml, { op: 'set', service: 'default/web', field: 'sessionAffinity', value: 'ClientIP' });
    expect(readFormModel(y).services[0]).toMatchObject({ sessionAffinity: 'ClientIP', affinitySeconds: DEFAULT_AFFINITY_SECONDS });
    y = applyFormEdit(y, { op: 'set', service: 'default/web', field: 'affinitySeconds', value: 30 });
    expect(parseManifests(y).services[0]!.spec.sessionAffinityTimeoutSeconds).toBe(30);
    y = applyFormEdit(y, { op: 'set', service: 'default/web', field: 'sessionAffinity', value: 'None' });
    expect(y).not.toContain('sessionAffinityConfig');
    y = applyFormEdit(y, { op: 'set', service: 'default/web', field: 'type', value: 'NodePort' });
    const np = readFormModel(y).services[0]!;
    expect(np.type).toBe('NodePort');
    expect(np.ports[0]!.nodePort).toBeGreaterThanOrEqual(30000);
    y = applyFormEdit(y, { op: 'set', service: 'default/web', field: 'externalTrafficPolicy', value: 'Local' });
    y = applyFormEdit(y, { op: 'set', service: 'default/web', field: 'internalTrafficPolicy', value: 'Local' });
    expect(parseManifests(y).issues).toEqual([]);
    expect(parseManifests(y).services[0]!.spec).toMatchObject({ externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' });
    // internalTrafficPolicy: Local from a pod: only this node's pods (node-a: .11 and .13).
    const p = wire(presetById('clusterip')!.packet);
    expect(await outcomes(y, p)).toEqual(['FORWARD → 10.244.1.11:8080', 'FORWARD → 10.244.1.13:8080']);
    // Back to ClusterIP drops the node port and the external policy.
    const cip = applyFormEdit(y, { op: 'set', service: 'default/web', field: 'type', value: 'ClusterIP' });
    expect(cip).not.toContain('nodePort');
    expect(cip).not.toContain('externalTrafficPolicy');
    // A port's number and target port: the slice's port follows the target.
    let q = applyFormEdit(yaml, { op: 'port', service: 'default/web', index: 0, field: 'port', value: 81 });
    q = applyFormEdit(q, { op: 'port', service: 'default/web', index: 0, field: 'targetPort', value: 9090 });
    const set = parseManifests(q);
    expect(set.services[0]!.spec.ports[0]).toMatchObject({ port: 81, targetPort: 9090 });
    expect(set.endpointSlices[0]!.ports[0]).toMatchObject({ name: 'http', port: 9090 });
    expect(await outcomes(q, { ...p, dport: 81 })).toContain('FORWARD → 10.244.1.11:9090');
    // Another port: names for both, and a matching slice port.
    const two = applyFormEdit(yaml, { op: 'add-port', service: 'default/web' });
    const ports = readFormModel(two).services[0]!.ports;
    expect(ports.map((x) => x.port)).toEqual([80, 81]);
    expect(parseManifests(two).issues).toEqual([]);
    expect(await outcomes(two, { ...p, dport: 81 })).toContain(`FORWARD → 10.244.1.11:${ports[1]!.targetPort}`);
  });

  it('an edit that keeps every document in place gives the model and objects a fresh read of its text gives', () => {
    const texts = [...PRESETS.filter((x) => x.yaml !== undefined).map((x) => x.yaml!), editsText(presetById('scale-20k')!, withService(presetById('scale-20k')!, [], 42))];
    let checked = 0;
    for (const text of texts) {
      for (const svc of readFormModel(text).services) {
        const ep = svc.endpoints[0];
        const edits: FormEdit[] = [
          { op: 'set', service: svc.key, field: 'type', value: svc.type === 'ClusterIP' ? 'NodePort' : 'ClusterIP' },
          { op: 'set', service: svc.key, field: 'sessionAffinity', value: svc.sessionAffinity === 'None' ? 'ClientIP' : 'None' },
          { op: 'port', service: svc.key, index: 0, field: 'targetPort', value: 9191 },
          ...(ep ? [
            { op: 'condition', service: svc.key, slice: ep.slice, index: ep.index, condition: 'ready', value: !ep.ready },
            { op: 'endpoint-node', service: svc.key, slice: ep.slice, index: ep.index, value: ep.node === 'node-a' ? 'node-b' : 'node-a' },
          ] satisfies FormEdit[] : []),
        ];
        for (const e of edits) {
          const r = formEdit(text, e);
          expect(r.yaml).toBe(applyFormEdit(text, e));
          expect(r.yaml).not.toBe(text);
          expect(r.model).toEqual(readFormModel(r.yaml));
          expect(r.objects).toEqual(editsFromText(r.yaml).objects);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
    // Edits that add or remove documents or rows leave the reading to the caller.
    const web = yamlOf('clusterip');
    expect(formEdit(web, { op: 'add-service' }).model).toBeUndefined();
    expect(formEdit(web, { op: 'add-endpoint', service: 'default/web' }).objects).toBeUndefined();
  });
});
