// A ClientIP-affinity Service (timeout 600 s) with eight endpoints and six clients, and each
// client's endpoint for a new connection: what the affinity suites (restart, weeks of proxy time)
// drive in every mode.
import { expect } from 'vitest';
import type { Dataplane } from '../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../host-node/core/packet.js';

export const AFFINITY_ENDPOINTS = [11, 12, 13, 14, 15, 16, 17, 18].map((i) => `198.19.1.${i}`);
export const AFFINITY_OBJECTS = [
  'apiVersion: v1\nkind: Service\nmetadata: { name: web, namespace: default }\nspec:\n  clusterIP: 198.18.96.80\n' +
  '  sessionAffinity: ClientIP\n  sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } }\n' +
  '  ports: [{ name: p, port: 80, protocol: TCP, targetPort: 8080 }]',
  'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n' +
  'metadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }\n' +
  'addressType: IPv4\nports: [{ name: p, port: 8080, protocol: TCP }]\nendpoints:\n' +
  AFFINITY_ENDPOINTS.map((ip) => `  - addresses: [${ip}]\n    conditions: { ready: true }`).join('\n'),
].join('\n---\n');
export const AFFINITY_CLIENTS = ['198.19.3.3', '198.19.3.4', '198.19.3.5', '198.19.3.6', '198.19.3.7', '198.19.3.8'];

/** The endpoint `src`'s new connection (source port `sport`) to the Service gets at `nowMs`. */
export function pick(dp: Dataplane, src: string, sport: number, nowMs: number): string {
  const r = dp.process(buildPacket({ src, dst: '198.18.96.80', proto: 'tcp', sport, dport: 80, flags: 'S' }), nowMs);
  expect(r.verdict).toBe('FORWARD');
  return decodePacket(r.packet!).dst;
}

/** Each client's endpoint for a new connection (source port `sport`) at `nowMs`. */
export function connect(dp: Dataplane, sport: number, nowMs: number): string[] {
  return AFFINITY_CLIENTS.map((src) => pick(dp, src, sport, nowMs));
}
