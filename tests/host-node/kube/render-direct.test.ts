// The direct renderer filling one reused DirectService (what a sync does for every put) renders
// and encodes exactly what a fresh render of each service port does, whatever came before it.
import { describe, expect, it } from 'vitest';
import { blankDirectService, parseManifests, ProxyState, renderDirectService, type DirectRenderOptions } from '../../../host-node/kube/index.js';
import { encodeDirectOps } from '../../../host-node/core/svc-config.js';
import { docs, service, slice } from './modes/harness.js';

const http = [{ name: 'http', port: 80, targetPort: 8080 }];

describe('renderDirectService into a reused object', () => {
  it('renders and encodes each service port as a fresh render does, bigger and smaller ones in turn', () => {
    const text = docs(
      service('lb', {
        type: 'LoadBalancer', clusterIP: '198.18.0.1', ports: [{ ...http[0], nodePort: 30080 }], externalIPs: ['198.18.9.1', '198.18.9.2'],
        loadBalancerSourceRanges: ['198.18.200.0/24'], externalTrafficPolicy: 'Local', sessionAffinity: 'ClientIP',
      }, { loadBalancer: { ingress: [{ ip: '198.18.8.1' }, { ip: '198.18.9.1' }] } }),
      slice('lb', [{ ip: '198.19.0.1', node: 'node-a' }, { ip: '198.19.0.2', node: 'node-b' }], http),
      service('plain', { clusterIP: '198.18.0.2', ports: http }),
      slice('plain', [{ ip: '198.19.1.1' }], http),
      service('np', { type: 'NodePort', clusterIP: '198.18.0.3', ports: [{ ...http[0], nodePort: 30081 }], internalTrafficPolicy: 'Local' }),
      slice('np', [{ ip: '198.19.2.1', node: 'node-a' }, { ip: '198.19.2.2', ready: false, serving: true, terminating: true }], http),
      service('empty', { clusterIP: '198.18.0.4', ports: http, externalIPs: ['198.18.9.4'] }),
    );
    const set = parseManifests(text);
    expect(set.issues).toEqual([]);
    const state = new ProxyState({ nodeName: 'node-a', families: [4] });
    for (const s of set.services) state.onService(null, s);
    for (const s of set.endpointSlices) state.onEndpointSlice(s);
    state.markServicesSynced();
    state.markEndpointSlicesSynced();
    const model = state.sync()[0]!.model;
    const opts: DirectRenderOptions = { nodeName: 'node-a', nodeIPs: ['198.18.200.1'] };
    const sps = model.sortedServices();
    expect(sps.map((sp) => sp.name)).toEqual(['default/empty:http', 'default/lb:http', 'default/np:http', 'default/plain:http']);
    const into = blankDirectService();
    // Each order: every service port after every other one.
    for (const order of [[1, 3, 2, 0, 1, 0, 3, 2, 1], [0, 2, 3, 1]]) {
      for (const k of order) {
        const sp = sps[k]!;
        const eps = model.endpoints.get(sp.id) ?? [];
        const fresh = renderDirectService(sp, eps, opts, 7);
        const reused = renderDirectService(sp, eps, opts, 7, into);
        expect(reused).toBe(into);
        expect({ ...reused, frontends: reused.frontends.map((f) => ({ ...f })) }).toEqual(fresh);
        expect(encodeDirectOps([{ op: 'put', slot: -1, svc: reused }])).toEqual(encodeDirectOps([{ op: 'put', slot: -1, svc: fresh }]));
      }
    }
    // The big one really has every kind of frontend, and the empty one none of its endpoints.
    const lb = renderDirectService(sps[1]!, model.endpoints.get(sps[1]!.id)!, opts, 1);
    expect(lb.frontends.map((f) => f.kind)).toEqual(['cluster', 'external', 'external', 'loadBalancer', 'nodePort']);
    expect(lb.firewall).toBe(true);
    expect(renderDirectService(sps[0]!, [], opts, 1).hasEndpoints).toBe(false);
  });
});
