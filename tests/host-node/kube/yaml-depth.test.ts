// Text nested too deep for the YAML parsers is refused before they read it: the bound counted on
// every shape of nesting (flow brackets, block indentation, compact `- - x` entries, JSON), exact
// at the limit, reset at document markers; real manifests (a kubectl dump with its JSON
// annotation) pass. Then the manifests reader refuses such text with the line, and goes on
// working: deep text read twice in one process used to end it (V8 overflowing its stack while
// compiling a regular expression, which is fatal instead of an exception). The full parser's
// entry measures the tree it built (wrong text nests in ways characters do not show) and refuses
// keys that are collections. The proxy's config file and the playground's editor: their own suites.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TOO_DEEP, YAML_MAX_DEPTH, yamlDocuments, yamlTooDeep } from '../../../host-node/kube/yaml-depth.js';
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

  it('the full parser: nesting only its own tree shows is refused with the line, before it is composed', () => {
    // Wrong text the parser still nests a level per indicator: `a: ? ? ? …` passes the character
    // bound (one line, one indentation) and used to reach the composer 20,000 levels deep.
    const chain = (n: number) => `kind: Service\nspec: ${'? '.repeat(n)}x\n`;
    expect(yamlTooDeep(chain(5000))).toBe(0);
    expect(yamlDocuments(chain(5000))).toEqual({ deep: 2 });
    const shallow = yamlDocuments(chain(100));
    expect('docs' in shallow && shallow.docs[0]!.errors.length).toBeGreaterThan(0);
    const r = parseManifests(chain(5000), 'chain.yaml');
    expect(r.issues).toEqual([{ severity: 'error', source: 'chain.yaml', line: 2, path: '', message: TOO_DEEP }]);
    // Errors carry their line and column whether or not a line counter was handed in.
    const bad = yamlDocuments('a: 1\nb: @x\n');
    expect('docs' in bad && bad.docs[0]!.errors[0]!.linePos?.[0]).toEqual({ line: 2, col: 4 });
  });

  it('refuses keys that are collections or aliases: made text, they are printed whole at every level', async () => {
    // A hundred levels of `? ` keys over a 20 KB list took about a minute to read.
    const text = `${'? '.repeat(100)}[${'a,'.repeat(10000)}]\n`;
    const message = 'a mapping key must be a single value, not a list, a mapping or an alias';
    expect(parseManifests(text, 'keys.yaml').issues).toEqual([{ severity: 'error', source: 'keys.yaml', line: 1, path: '', message }]);
    expect(parseManifests('a: &x 1\n*x : 2\n').issues.map((i) => [i.line, i.message])).toEqual([[2, message]]);
    expect(parseManifests('{[a]: 1}\n').issues.map((i) => i.message)).toEqual([message]);
    // Bytes are no text either; the package would print a process warning for them.
    const warned: string[] = [];
    const onWarning = (w: Error) => warned.push(w.message);
    process.on('warning', onWarning);
    try {
      expect(parseManifests('kind: Service\nspec:\n  !!binary aGVsbG8=: {a: 1}\n', 'bytes.yaml').issues.map((i) => [i.line, i.message])).toEqual([[3, message]]);
      await new Promise((r) => setImmediate(r));   // warnings are emitted on a later tick
    } finally {
      process.off('warning', onWarning);
    }
    expect(warned).toEqual([]);
  });

  it('finds duplicate keys by value, in block and flow mappings, as the composer did', () => {
    const issues = (t: string) => parseManifests(t, 'dup.yaml', true).issues.map((i) => [i.line, i.message]);
    expect(issues('kind: Service\nmetadata:\n  name: a\n  name: b\n')).toEqual([[4, 'Map keys must be unique']]);
    expect(issues('{kind: Service, kind: Service}\n')).toEqual([[1, 'Map keys must be unique']]);
    expect(issues('~: 1\n: 2\n')).toEqual([[2, 'Map keys must be unique']]);
    // Different values are different keys: the number 1 and the text "1", NaN and NaN.
    expect(issues('1: a\n"1": b\n').map((i) => i[1])).not.toContain('Map keys must be unique');
    expect(issues('.nan: a\n.nan: b\n').map((i) => i[1])).not.toContain('Map keys must be unique');
  });

  it('a process that read these texts goes on (a child process: the overflow used to end it)', () => {
    // The sequence that ended a process: two texts read by the full parser, then the one-line chain.
    const script = `
      import { parseManifests } from ${JSON.stringify(pathToFileURL(resolve('dist/host-node/kube/objects.js')).href)};
      const texts = ['a: ' + '\\n'.repeat(100000) + 'z\\n', '\\n'.repeat(100000) + 'x', 'a: ' + '? '.repeat(50000) + 'z\\n'];
      for (const t of texts) console.log(parseManifests(t).issues[0]?.message);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toContain('FATAL');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe(TOO_DEEP);
  });

});
