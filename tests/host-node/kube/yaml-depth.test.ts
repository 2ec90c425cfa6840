// Text nested too deep for the YAML parsers is refused before they read it: the bound counted on
// every shape of nesting (flow brackets, block indentation, compact `- - x` entries, JSON), exact
// at the limit, reset at document markers; real manifests (a kubectl dump with its JSON
// annotation) pass. Then the manifests reader refuses such text with the line, and goes on
// working: deep text read twice in one process used to end it (V8 overflowing its stack while
// compiling a regular expression, which is fatal instead of an exception). The proxy's config
// file and the playground's editor: their own suites.
import { describe, it, expect } from 'vitest';
import { YAML_MAX_DEPTH, yamlTooDeep } from '../../../host-node/kube/yaml-depth.js';
import { parseManifests } from '../../../host-node/kube/objects.js';

const flow = (n: number): string => `x: ${'['.repeat(n)}${']'.repeat(n)}\n`;
const block = (n: number): string => Array.from({ length: n }, (_, i) => `${' '.repeat(i)}- `).join('\n') + 'x\n';
const compact = (n: number): string => `${'- '.repeat(n)}x\n`;
const json = (n: number): string => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

const SERVICE = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"web","namespace":"default"},"spec":{"ports":[{"name":"http","port":80,"targetPort":8080}],"selector":{"app":"web"}}}
spec:
  clusterIP: 10.96.0.80
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: TCP }]
`;

describe('yamlTooDeep', () => {
  it('counts every shape of nesting, exactly at the limit', () => {
    // n collections inside one another, with the mapping or scalar at either end: n + 1 levels.
    const n = YAML_MAX_DEPTH - 1;
    for (const [shape, line] of [[flow, 1], [block, YAML_MAX_DEPTH], [compact, 1], [json, 1]] as const) {
      expect(yamlTooDeep(shape(n)), shape.name).toBe(0);
      expect(yamlTooDeep(shape(n + 1)), shape.name).toBe(line);
    }
    expect(yamlTooDeep('')).toBe(0);
  });

  it('closes levels as indentation returns, and starts again at each document', () => {
    const wave = Array.from({ length: 40 }, () => block(200)).join('');
    expect(yamlTooDeep(wave)).toBe(0);
    const docs = Array.from({ length: 3 }, () => `x: ${'['.repeat(200)}\n`).join('---\n');
    expect(yamlTooDeep(docs)).toBe(0);
    expect(yamlTooDeep(docs.replaceAll('---\n', ''))).toBe(2);
  });

  it('passes real manifests, brackets in their strings and comments included', () => {
    expect(yamlTooDeep(SERVICE)).toBe(0);
    expect(yamlTooDeep(Array.from({ length: 500 }, () => SERVICE).join('---\n'))).toBe(0);
    expect(yamlTooDeep(`# [[[[ a comment\nx: "]] [[ {"\n`)).toBe(0);
  });
});

describe('the manifests reader refuses text nested too deep, and keeps working', () => {
  // Deep enough for the parsers to overflow the stack under Node (about 800 flow levels).
  const deep = [flow, block, compact, json].map((shape) => shape(5000));

  it('manifests: an issue with the line, nothing read; a good file afterwards reads', () => {
    for (let round = 0; round < 2; round++) {
      for (const text of deep) {
        const r = parseManifests(text, 'deep.yaml');
        expect(r.services).toEqual([]);
        expect(r.issues).toEqual([{ severity: 'error', source: 'deep.yaml', line: expect.any(Number), path: '', message: `nested more than ${YAML_MAX_DEPTH} levels deep: not read` }]);
      }
    }
    expect(parseManifests(SERVICE).services.map((s) => s.spec.clusterIP)).toEqual(['10.96.0.80']);
  });

});
