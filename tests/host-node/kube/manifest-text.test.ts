// The quick manifest parser (js-yaml, manifest-text.ts) against the full one (`yaml`): over a
// corpus of real and generated manifests — kube-proxy's own test fixtures, kubectl-style Lists,
// JSON, CRLF line ends, comments, block scalars, flow style — parseManifests gives exactly what the
// full parser gives, every object's line included; texts with a problem, anchors or directives go
// to the full parser, so messages keep their lines.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { parseManifests } from '../../../host-node/kube/index.js';
import { quickDocuments } from '../../../host-node/kube/manifest-text.js';
import { randomCluster } from '../../support/kube-gen.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');

const HAND = `# a cluster, written by hand
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations:
    note: |
      two lines
      of text
    other: >-
      folded
      text
spec:
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80, targetPort: 8080}


---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {"kubernetes.io/service-name": web}}
addressType: IPv4
endpoints:
  - addresses: ['10.244.0.5']
    conditions:
      ready: true
ports: [{name: http, port: 8080}]
...
---
kind: Node
apiVersion: v1
metadata:
    name: node-a
`;

/** Decoded objects written back as manifests, one document each. */
function documents(seed: number): object[] {
  const c = randomCluster(seed);
  return [...c.services, ...c.slices].map((o) => ({ apiVersion: o.kind === 'Service' ? 'v1' : 'discovery.k8s.io/v1', ...JSON.parse(JSON.stringify(o)) }));
}

function corpus(): Array<[string, string]> {
  const out: Array<[string, string]> = [['hand', HAND], ['hand CRLF', HAND.replace(/\n/g, '\r\n')]];
  for (const f of readdirSync(FIXTURES).filter((n) => n.endsWith('.yaml'))) out.push([f, readFileSync(join(FIXTURES, f), 'utf8')]);
  for (const seed of [1, 2, 3]) {
    const docs = documents(seed);
    out.push([`random ${seed}: documents`, docs.map((d) => stringify(d)).join('---\n')]);
    out.push([`random ${seed}: kubectl List`, stringify({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items: docs })]);
    out.push([`random ${seed}: JSON List`, JSON.stringify({ kind: 'List', apiVersion: 'v1', items: docs }, null, 2)]);
    out.push([`random ${seed}: JSON lines`, docs.map((d) => JSON.stringify(d)).join('\n---\n')]);
    out.push([`random ${seed}: typed list, flow style`, stringify({ kind: 'ServiceList', items: docs.filter((d) => (d as { kind: string }).kind === 'Service') }, { collectionStyle: 'flow' })]);
  }
  return out;
}

describe('quick manifest parsing', () => {
  it('gives what the full parser gives, lines included, for every text of the corpus', () => {
    const texts = corpus();
    expect(texts.length).toBeGreaterThan(40);
    for (const [name, text] of texts) {
      expect(quickDocuments(text), name).not.toBeNull();
      const quick = parseManifests(text, name);
      const full = parseManifests(text, name, true);
      expect(quick.services.length + quick.endpointSlices.length + quick.nodes.length, name).toBeGreaterThan(0);
      expect(quick.issues, name).toEqual([]);
      expect(quick, name).toEqual(full);
      const lines = [...quick.services, ...quick.endpointSlices, ...quick.nodes].map((o) => o.origin?.line);
      expect(lines.every((l) => typeof l === 'number' && l > 0), name).toBe(true);
    }
  });

  it('leaves texts with a problem to the full parser, which gives each message its line', () => {
    const bad = HAND.replace('port: 80,', 'port: 80000,');
    const set = parseManifests(bad, 'bad.yaml');
    expect(set).toEqual(parseManifests(bad, 'bad.yaml', true));
    expect(set.issues).toEqual([expect.objectContaining({ severity: 'error', line: 16, object: 'Service default/web', path: 'spec.ports[0].port' })]);
    expect(set.endpointSlices).toHaveLength(1);
    const broken = 'kind: Service\nmetadata: {name: x\n';
    expect(quickDocuments(broken)).toBeNull();
    expect(parseManifests(broken, 'b.yaml').issues[0]).toMatchObject({ severity: 'error', line: expect.any(Number) });
  });

  it('reads every plain scalar as YAML 1.2 does, or leaves the text to the full parser', () => {
    const pieces = ['0', '1', '7', '-', '+', '.', 'e', 'E', 'b', 'o', 'x', 'f', 'inf', 'Inf', 'NaN', '_', 'true', 'False', 'null', 'NULL', '~', 'yes', ':', '1.5', '0x1F', '0o17', '0b101', '+.5', '-0'];
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    let quick = 0;
    for (let i = 0; i < 3000; i++) {
      let v = '';
      for (let k = 1 + rnd(3); k > 0; k--) v += pieces[rnd(pieces.length)];
      const text = `kind: Node\nmetadata:\n  name: n\n  labels: {a: x}\nv: ${v}\nw: [${v}, ${v}]\n`;
      let full: unknown;
      try { full = parse(text); } catch { continue; }
      const docs = quickDocuments(text);
      if (docs === null) continue;
      quick++;
      expect(docs.map((d) => d.value), JSON.stringify(v)).toEqual([full]);
    }
    expect(quick).toBeGreaterThan(1000);
  });

  it('leaves null and empty keys to the full parser wherever blanks stand, and reads a long run of blanks once', () => {
    for (const key of [':', '~:', 'null :', '  Null\t:', 'NULL:']) {
      for (const text of [`kind: Node\n${key} x\n`, `kind: Node\nm: {a: 1, ${key} 2}\n`, `kind: Node\nm: [{${key} 2}]\n`, `kind: Node\nm:\n  \t ${key} 3\n`]) {
        expect(quickDocuments(text), JSON.stringify(text)).toBeNull();
        expect(parseManifests(text, 'k.yaml')).toEqual(parseManifests(text, 'k.yaml', true));
      }
    }
    expect(quickDocuments('kind: Node\nm: {a: x:y}\nn: "~ :"\n')).not.toBeNull();
    // 300,000 blanks before a word: the null-key check used to start again at every blank of the
    // run (about two minutes here); now one pass.
    const text = `kind: Node\nmetadata: {name: n}\nnote: ${' '.repeat(300_000)}x\n`;
    expect(parseManifests(text).nodes.map((n) => n.metadata.name)).toEqual(['n']);
  });

  it('leaves anchors, directives and nested lists to the full parser', () => {
    const anchored = 'kind: Service\nmetadata: &m {name: a}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n---\nkind: Service\nmetadata: *m\n';
    expect(quickDocuments(anchored)).toBeNull();
    expect(parseManifests(anchored, 'a.yaml')).toEqual(parseManifests(anchored, 'a.yaml', true));
    // YAML 1.1 reads `yes` as true: only the full parser follows the directive.
    const v11 = '%YAML 1.1\n---\nkind: Node\nmetadata: {name: "n", labels: {a: yes}}\n';
    expect(quickDocuments(v11)).toBeNull();
    expect(parseManifests(v11, 'v.yaml')).toEqual(parseManifests(v11, 'v.yaml', true));
    const nested = stringify({ kind: 'List', items: [{ kind: 'List', items: documents(4).slice(0, 3) }] });
    expect(quickDocuments(nested)).not.toBeNull();
    const set = parseManifests(nested, 'n.yaml');
    expect(set).toEqual(parseManifests(nested, 'n.yaml', true));
    expect([...set.services, ...set.endpointSlices].every((o) => typeof o.origin?.line === 'number')).toBe(true);
  });
});
