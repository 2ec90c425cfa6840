// ManifestSource: a manifests directory or one file, parsed whole on every reload and applied as
// one diff; watched with fs.watch + debounce; files with errors keep their previous objects and
// report file:line and field. Uses a temporary directory only.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestSource } from '../../../host-node/io/manifests.js';
import { formatIssue, ProxyState } from '../../../host-node/kube/index.js';

const svcYaml = (name: string, ip: string, port = 80) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
spec:
  clusterIP: ${ip}
  ports:
  - name: http
    port: ${port}
`;
const sliceYaml = (name: string, svc: string, ip: string) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  namespace: default
  labels: {kubernetes.io/service-name: ${svc}}
addressType: IPv4
endpoints:
- addresses: [${ip}]
  conditions: {ready: true}
ports:
- {name: http, port: 8080}
`;

let dir: string;
let source: ManifestSource | null;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'svp-manifests-'));
  source = null;
});
afterEach(async () => {
  await source?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function start(opts: { path?: string; watch?: boolean } = {}) {
  const state = new ProxyState({ nodeName: 'node-a', families: [4] });
  const batches: boolean[] = [];
  let waiters: (() => void)[] = [];
  const src = new ManifestSource({ nodeName: 'node-a', path: opts.path ?? dir, watch: opts.watch ?? true, debounceMs: 30, pollMs: 100 });
  source = src;
  src.start(state, (want) => {
    batches.push(want);
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  });
  /** Resolves at the next notification (a debounced reload). */
  const nextBatch = () => new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no reload happened')), 4000);
    waiters.push(() => { clearTimeout(t); resolve(); });
  });
  const services = () => {
    state.sync();
    return [...state.families.get(4)!.model.services.values()].map((s) => `${s.namespacedName}:${s.port}`).sort();
  };
  const endpoints = () => [...state.families.get(4)!.model.endpoints.values()].flat().map((e) => e.endpoint).sort();
  return { state, src, batches, nextBatch, services, endpoints };
}

describe('ManifestSource: loading', () => {
  it('loads YAML, JSON and kubectl lists from a directory and is synced when start() returns', () => {
    writeFileSync(join(dir, 'a.yaml'), `${svcYaml('web', '10.96.0.10')}---\n${sliceYaml('web-1', 'web', '10.0.0.1')}`);
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'default' }, spec: { clusterIP: '10.96.0.11', ports: [{ name: 'http', port: 81 }] } }));
    writeFileSync(join(dir, 'c.yml'), `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: db, namespace: default}
  spec: {clusterIP: 10.96.0.12, ports: [{name: http, port: 5432}]}
- apiVersion: v1
  kind: Node
  metadata: {name: node-a, labels: {topology.kubernetes.io/zone: z1}}
- apiVersion: v1
  kind: Node
  metadata: {name: node-b, labels: {topology.kubernetes.io/zone: z2}}
`);
    writeFileSync(join(dir, '.hidden.yaml'), svcYaml('hidden', '10.96.0.99'));
    writeFileSync(join(dir, 'notes.txt'), svcYaml('notes', '10.96.0.98'));
    const t = start({ watch: false });
    expect(t.src.synced).toBe(true);
    expect(t.state.initialized).toBe(true);
    expect(t.batches).toEqual([true]);
    expect(t.services()).toEqual(['default/api:81', 'default/db:5432', 'default/web:80']);
    expect(t.endpoints()).toEqual(['10.0.0.1:8080']);
    expect(t.state.topologyLabels).toEqual({ 'topology.kubernetes.io/zone': 'z1' });
    expect(t.src.issues).toEqual([]);
  });

  it('start() throws for a path that does not exist', () => {
    const state = new ProxyState({ nodeName: 'node-a', families: [4] });
    expect(() => new ManifestSource({ nodeName: 'node-a', path: join(dir, 'missing') }).start(state, () => {})).toThrow(/ENOENT/);
  });

  it('reports a duplicate object and keeps the one from the first file', () => {
    writeFileSync(join(dir, 'a.yaml'), svcYaml('web', '10.96.0.10', 80));
    writeFileSync(join(dir, 'b.yaml'), svcYaml('web', '10.96.0.10', 90));
    const t = start({ watch: false });
    expect(t.services()).toEqual(['default/web:80']);
    expect(t.src.issues.map(formatIssue)).toEqual(['warning: b.yaml:1: Service default/web: also defined in a.yaml; that one is used']);
  });
});

describe('ManifestSource: changes', () => {
  it('file add, change and delete become adds, updates and deletes', async () => {
    writeFileSync(join(dir, 'a.yaml'), `${svcYaml('web', '10.96.0.10')}---\n${sliceYaml('web-1', 'web', '10.0.0.1')}`);
    writeFileSync(join(dir, 'b.yaml'), svcYaml('api', '10.96.0.11'));
    const t = start();
    expect(t.services()).toEqual(['default/api:80', 'default/web:80']);

    let next = t.nextBatch();
    writeFileSync(join(dir, 'c.yaml'), svcYaml('db', '10.96.0.12', 5432));
    await next;
    expect(t.services()).toEqual(['default/api:80', 'default/db:5432', 'default/web:80']);

    next = t.nextBatch();
    writeFileSync(join(dir, 'a.yaml'), `${svcYaml('web', '10.96.0.10', 8080)}---\n${sliceYaml('web-1', 'web', '10.0.0.2')}`);
    await next;
    expect(t.services()).toEqual(['default/api:80', 'default/db:5432', 'default/web:8080']);
    expect(t.endpoints()).toEqual(['10.0.0.2:8080']);

    next = t.nextBatch();
    unlinkSync(join(dir, 'b.yaml'));
    await next;
    expect(t.services()).toEqual(['default/db:5432', 'default/web:8080']);
    expect(t.src.stats().services).toMatchObject({ adds: 3, updates: 1, deletes: 1, objects: 2 });
    expect(t.src.stats().endpointslices).toMatchObject({ adds: 1, updates: 1, deletes: 0 });
  });

  it('a file with errors keeps its previous objects and reports file:line and field', async () => {
    writeFileSync(join(dir, 'a.yaml'), `${svcYaml('web', '10.96.0.10')}---\n${svcYaml('web2', '10.96.0.20')}`);
    const t = start();
    let next = t.nextBatch();
    // web2's port (line 21 of the file) is out of range; web changed too, but the file is held back whole.
    writeFileSync(join(dir, 'a.yaml'), `${svcYaml('web', '10.96.0.10', 81)}---\n${svcYaml('web2', '10.96.0.20', 70000)}`);
    await next;
    expect(t.services()).toEqual(['default/web2:80', 'default/web:80']);
    const text = t.src.issues.map(formatIssue);
    expect(text).toContain('error: a.yaml:21: Service default/web2: spec.ports[0].port: 70000 is out of range 1-65535');
    expect(text).toContain("warning: a.yaml: file has errors; keeping the 2 object(s) of its last error-free version");

    // A YAML syntax error names its line too; a new broken file loads nothing.
    next = t.nextBatch();
    writeFileSync(join(dir, 'b.yaml'), `${svcYaml('db', '10.96.0.12')}    port: 81\n`);
    await next;
    expect(t.services()).toEqual(['default/web2:80', 'default/web:80']);
    expect(t.src.issues.filter((i) => i.source === 'b.yaml' && i.severity === 'error').map((i) => [i.line, /unique/.test(i.message)])).toEqual([[11, true]]);
    expect(t.src.issues.map(formatIssue)).toContain('warning: b.yaml: file has errors; nothing loaded from it until it is fixed');

    // Fixed: both files apply.
    next = t.nextBatch();
    writeFileSync(join(dir, 'a.yaml'), `${svcYaml('web', '10.96.0.10', 81)}---\n${svcYaml('web2', '10.96.0.20', 82)}`);
    writeFileSync(join(dir, 'b.yaml'), svcYaml('db', '10.96.0.12'));
    await next;
    expect(t.services()).toEqual(['default/db:80', 'default/web2:82', 'default/web:81']);
    expect(t.src.issues).toEqual([]);
  });

  it('one reload is one diff: a Service moved between files is neither deleted nor re-added', () => {
    writeFileSync(join(dir, 'a.yaml'), `${svcYaml('web', '10.96.0.10')}---\n${svcYaml('api', '10.96.0.11')}`);
    const t = start({ watch: false });
    t.services();
    writeFileSync(join(dir, 'a.yaml'), svcYaml('api', '10.96.0.11'));
    writeFileSync(join(dir, 'z.yaml'), svcYaml('web', '10.96.0.10'));
    const r = t.src.reload();
    expect(r.changed).toBe(false);
    expect(t.batches).toEqual([true, false]);
    expect(t.state.sync()[0]!.changedServices).toEqual(new Set());
    expect(t.src.stats().services).toMatchObject({ adds: 2, updates: 0, deletes: 0 });
  });

  it('a single file is watched through its directory and survives an atomic replace', async () => {
    const file = join(dir, 'svc.yaml');
    writeFileSync(file, svcYaml('web', '10.96.0.10'));
    writeFileSync(join(dir, 'other.yaml'), svcYaml('other', '10.96.0.50'));
    const t = start({ path: file });
    expect(t.services()).toEqual(['default/web:80']);
    const next = t.nextBatch();
    writeFileSync(join(dir, '.svc.yaml.tmp'), `${svcYaml('web', '10.96.0.10', 90)}---\n${svcYaml('api', '10.96.0.11')}`);
    renameSync(join(dir, '.svc.yaml.tmp'), file);
    await next;
    expect(t.services()).toEqual(['default/api:80', 'default/web:90']);
  });

  /**
   * A ConfigMap volume as the kubelet's AtomicWriter updates it: the keys' contents in a new
   * timestamped directory, `..data` swapped to it by renaming a fresh link over it, each key a
   * link through `..data` (a key new in this version gets its link after the swap, a key gone
   * loses its link after it, and the old directory goes).
   */
  let published: { ts: string; keys: string[] } | null = null;
  function publish(files: Record<string, string>, version: number): void {
    const ts = `..2026_12_05_08_00_0${version}.000000001`;
    mkdirSync(join(dir, ts));
    for (const [key, text] of Object.entries(files)) writeFileSync(join(dir, ts, key), text);
    symlinkSync(ts, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    const keys = Object.keys(files);
    for (const key of keys) {
      try { symlinkSync(join('..data', key), join(dir, key)); } catch { /* the key had a link already */ }
    }
    if (published) {
      for (const key of published.keys) if (!keys.includes(key)) unlinkSync(join(dir, key));
      rmSync(join(dir, published.ts), { recursive: true });
    }
    published = { ts, keys };
  }
  const until = async (ok: () => boolean, what: string) => {
    for (const end = Date.now() + 4000; !ok();) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  for (const single of [false, true]) {
    it(`a ConfigMap mount's ..data swap is a reload (${single ? 'one key as the file' : 'the mount as the directory'})`, async () => {
      published = null;
      publish({ 'services.yaml': svcYaml('web', '10.96.0.10') }, 1);
      const t = start({ path: single ? join(dir, 'services.yaml') : dir });
      expect(t.services()).toEqual(['default/web:80']);
      let next = t.nextBatch();
      publish({ 'services.yaml': svcYaml('web', '10.96.0.10', 90), 'slices.yaml': sliceYaml('web-1', 'web', '10.0.0.1') }, 2);
      await next;
      expect(t.services()).toEqual(['default/web:90']);
      // The directory reads the new key; one file is that file alone.
      expect(t.endpoints()).toEqual(single ? [] : ['10.0.0.1:8080']);
      // A version without the slices key: its objects go with its link.
      publish({ 'services.yaml': `${svcYaml('web', '10.96.0.10', 90)}---\n${svcYaml('api', '10.96.0.11')}` }, 3);
      await until(() => t.services().length === 2 && t.endpoints().length === 0, 'the third version');
      expect(t.services()).toEqual(['default/api:80', 'default/web:90']);
    });
  }

  // A file that is a link into another directory (a config manager's store): edits there send the
  // watched directory nothing; the periodic check of the files' sizes and times finds them.
  for (const single of [false, true]) {
    it(`a manifest that links to a file elsewhere is reloaded when that file changes (${single ? 'the link as the file' : 'in the directory'})`, async () => {
      const store = join(dir, 'store');
      const m = join(dir, 'm');
      mkdirSync(store);
      mkdirSync(m);
      writeFileSync(join(store, 'svc.yaml'), svcYaml('web', '10.96.0.10'));
      symlinkSync(join(store, 'svc.yaml'), join(m, 'svc.yaml'));
      const t = start({ path: single ? join(m, 'svc.yaml') : m });
      expect(t.services()).toEqual(['default/web:80']);
      writeFileSync(join(store, 'svc.yaml'), `${svcYaml('web', '10.96.0.10', 81)}---\n${svcYaml('api', '10.96.0.11')}`);
      await until(() => t.services().join() === 'default/api:80,default/web:81', 'the linked file re-read');
    });
  }

  // The directory replaced under the watch: removed and made again, or another renamed into its
  // place (the old one kept elsewhere). Its first version's objects stay while there is none.
  for (const how of ['deleted and made again', 'renamed away, another renamed in'] as const) {
    for (const single of [false, true]) {
      it(`a manifests directory ${how} is followed, and so are its later changes (${single ? 'one file in it' : 'the directory'})`, async () => {
        const m = join(dir, 'm');
        mkdirSync(m);
        writeFileSync(join(m, 'svc.yaml'), svcYaml('web', '10.96.0.10'));
        const t = start({ path: single ? join(m, 'svc.yaml') : m });
        expect(t.services()).toEqual(['default/web:80']);
        if (how === 'deleted and made again') {
          rmSync(m, { recursive: true });
          await new Promise((r) => setTimeout(r, 100));
          expect(t.services()).toEqual(['default/web:80']);
          mkdirSync(m);
          writeFileSync(join(m, 'svc.yaml'), svcYaml('web', '10.96.0.10', 81));
        } else {
          const next = join(dir, 'm.next');
          mkdirSync(next);
          writeFileSync(join(next, 'svc.yaml'), svcYaml('web', '10.96.0.10', 81));
          renameSync(m, join(dir, 'm.old'));
          renameSync(next, m);
        }
        await until(() => t.services().join() === 'default/web:81', 'the new directory read');
        // A change inside the new directory is seen (the watch moved to it).
        writeFileSync(join(m, 'svc.yaml'), svcYaml('web', '10.96.0.10', 82));
        await until(() => t.services().join() === 'default/web:82', 'a change in the new directory');
        writeFileSync(join(m, 'svc.yaml'), svcYaml('web', '10.96.0.10', 83));
        await until(() => t.services().join() === 'default/web:83', 'a second change in it');
      });
    }
  }
});
