// scene-edits.ts — editing a generated scene (20,000 Services) one Service at a time: the editor
// holds only the objects being edited, as YAML under a comment that says so; they replace the
// generated objects of the same kind, namespace and name (or join the scene) and reach the worker
// as the source's `edits`, so an edit syncs just those objects. Text ↔ objects and "show Service
// i" are pure and tested without a page. Never talks to the worker.
import { Document } from 'yaml';
import type { ManifestIssue } from '../../../host-node/kube/index.js';
import { TOO_DEEP, yamlDocuments } from '../../../host-node/kube/yaml-depth.js';
import type { Preset } from '../presets.js';

/** The comment the editor shows above a generated scene's edits. */
export function sceneHeader(p: Pick<Preset, 'size'>): string {
  const n = p.size ?? 0;
  return `# Generated: ${n.toLocaleString('en-US')} Services (svc-0 … svc-${n - 1}) in namespace default, two pods each.
# The objects below replace the generated ones with the same kind, namespace and name (new ones
# join the scene): edit them here or in the form; "Show Service" adds another one to edit.
`;
}

/** The editor's text for a generated scene with these edited objects. */
export function editsText(p: Pick<Preset, 'size'>, objects: unknown[]): string {
  const docs = objects.map((o) => new Document(o).toString({ flowCollectionPadding: false, lineWidth: 0 }));
  return sceneHeader(p) + docs.join('---\n');
}

/** The objects in the editor's text, or the YAML errors (with their lines) when it does not parse. */
export function editsFromText(text: string): { objects: unknown[]; issues: ManifestIssue[] } {
  const objects: unknown[] = [];
  const issues: ManifestIssue[] = [];
  const read = yamlDocuments(text);
  if ('deep' in read) return { objects, issues: [{ severity: 'error', path: '', line: read.deep, message: TOO_DEEP }] };
  for (const d of read.docs) {
    for (const e of d.errors) issues.push({ severity: 'error', path: '', message: e.message.split('\n')[0]!, ...(e.linePos ? { line: e.linePos[0].line } : {}) });
    const o = d.toJS() as unknown;
    if (o !== null && o !== undefined) objects.push(o);
  }
  return { objects: issues.length ? [] : objects, issues };
}

const keyOf = (o: unknown): string => {
  const x = o as { kind?: unknown; metadata?: { namespace?: unknown; name?: unknown } } | null;
  return `${String(x?.kind)}/${String(x?.metadata?.namespace ?? 'default')}/${String(x?.metadata?.name)}`;
};

/** The edits with Service i's generated objects added (unless already being edited). */
export function withService(p: Pick<Preset, 'serviceObjects'>, edits: unknown[], i: number): unknown[] {
  const add = p.serviceObjects?.(i) ?? [];
  const have = new Set(edits.map(keyOf));
  return [...edits, ...add.filter((o) => !have.has(keyOf(o)))];
}
