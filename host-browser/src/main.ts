// main.ts — the playground page: starts the core's worker, wires the panes (objects, packet,
// rules, changes, compare, conntrack, clock) to its calls, shows progress while it works, and
// keeps the whole state in the URL hash (share.ts) so a link or a downloaded file restores it.
// The page never runs the core itself: every answer comes from the worker.
import './style.css';
import { CoreClient, type Method, type Params, type Result, type ProgressNote, type Port } from './protocol.js';
import { IPVS_SCHEDULERS, PRESETS, presetById, type PacketSpec } from './presets.js';
import type { ModeConfig, ObjectSource } from './engine/playground.js';
import { decodeState, encodeState, stateFromHash, stateToHash, type ShareState } from './share.js';
import { Editor, PacketForm, toWire } from './ui/inputs.js';
import { ObjectsForm } from './ui/objects-form.js';
import { editsFromText, editsText, withService } from './ui/scene-edits.js';
import { byId, fill, h, renderChange, renderChart, renderCompare, renderConntrack, renderPacket, renderRules } from './ui/views.js';

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
// The worker's warm-up done (engine/warm.ts): a large scene picked from now on loads on optimized code.
const core = new CoreClient(worker as unknown as Port, (n) => {
  document.body.dataset.warmMs = String(n.ms);
  document.body.dataset.warm = n.error ? 'failed' : 'done';
  if (n.error) console.warn(`engine warm-up stopped: ${n.error}`);
});
const editor = new Editor();
const form = new PacketForm();
const objectsForm = new ObjectsForm();

const presetSel = byId<HTMLSelectElement>('preset');
const modeSel = byId<HTMLSelectElement>('mode');
const schedSel = byId<HTMLSelectElement>('scheduler');
const status = byId('status');
const scenePick = byId('scene-pick');
const sceneIndex = byId<HTMLInputElement>('scene-index');
const lesson = byId('lesson');

let state: ShareState = {
  objects: { preset: 'clusterip' }, mode: 'iptables', scheduler: 'rr', packet: PRESETS[0]!.packet, clockMs: 0,
};

presetSel.replaceChildren(...PRESETS.map((p) => h('option', { value: p.id }, p.title)), h('option', { value: '', disabled: true }, 'Your objects'));
schedSel.replaceChildren(...IPVS_SCHEDULERS.map((s) => h('option', { value: s }, s)));
fill(byId('compare-scheds'), ...IPVS_SCHEDULERS.map((s) => h('label', { class: 'chip' },
  h('input', { type: 'checkbox', value: s, checked: ['rr', 'sh', 'mh'].includes(s) }), ` ${s}`)));

// ---- calls with progress ----

let started = 0;
let ticker: ReturnType<typeof setInterval> | undefined;
// What the status line shows now: it is rewritten only when that changes.
let shown = '';

function showProgress(note: ProgressNote | null, error?: string): void {
  document.body.dataset.busy = String(core.busy);
  const secs = note ? ((performance.now() - started) / 1000).toFixed(1) : '';
  const key = error !== undefined ? `error ${error}` : note ? `${note.phase} ${note.done}/${note.total} ${secs}` : 'ready';
  if (key === shown) return;
  shown = key;
  if (error !== undefined) {
    fill(status, h('span', { class: 'error' }, error));
    return;
  }
  if (!note) {
    fill(status, h('span', { class: 'muted' }, 'ready'));
    return;
  }
  const bar = note.total ? h('progress', { max: note.total, value: note.done ?? 0 }) : h('progress', {});
  fill(status, bar, ` ${note.phase}${note.total ? ` ${(note.done ?? 0).toLocaleString('en-US')} / ${note.total.toLocaleString('en-US')}` : ''} · ${secs} s`);
}

/** A message of the page's own in the status line (until the next call's progress). */
function say(text: string): void {
  shown = `say ${text}`;
  fill(status, text);
}

// The worker's progress notes are only remembered; the status line shows the latest one every
// PROGRESS_MS. Drawing each note as it came would give the browser a frame to render between the
// notes of a short call, and the call's answer would wait behind those frames.
const PROGRESS_MS = 100;

async function call<M extends Method>(method: M, params: Params<M>): Promise<Result<M>> {
  let last: ProgressNote = { phase: method };
  started = performance.now();
  const p = core.call(method, params, (n) => { last = n; });
  document.body.dataset.busy = String(core.busy);
  clearInterval(ticker);
  ticker = setInterval(() => showProgress(last), PROGRESS_MS);   // the clock keeps moving: the page is alive
  try {
    const r = await p;
    showProgress(null);
    return r;
  } catch (e) {
    showProgress(null, (e as Error).message);
    throw e;
  } finally {
    if (core.busy === 0) clearInterval(ticker);
    document.body.dataset.busy = String(core.busy);
  }
}

// ---- state ↔ page ----

function modeConfig(): ModeConfig {
  return { mode: state.mode, scheduler: state.scheduler };
}

// The URL follows the state once the page has been quiet for HASH_QUIET_MS with no call in flight:
// encoding the state and replacing the URL take milliseconds, which must not fall between an edit
// and its answer (edits made in quick succession would otherwise meet the previous one's).
const HASH_QUIET_MS = 400;
let hashTimer: ReturnType<typeof setTimeout> | undefined;
function saveHash(): void {
  clearTimeout(hashTimer);
  hashTimer = setTimeout(async () => {
    if (core.busy > 0) {
      saveHash();
      return;
    }
    const hash = await stateToHash(state);
    lastHash = hash;
    history.replaceState(null, '', hash);
  }, HASH_QUIET_MS);
}
let lastHash = '';

function showObjects(source: ObjectSource): void {
  scenePick.hidden = true;
  if ('yaml' in source) {
    editor.setText(source.yaml);
    objectsForm.show(source.yaml);
    presetSel.value = PRESETS.find((p) => p.yaml === source.yaml)?.id ?? '';
    lesson.textContent = PRESETS.find((p) => p.yaml === source.yaml)?.lesson ?? '';
    return;
  }
  const p = presetById(source.preset);
  if (!p) throw new Error(`unknown preset ${source.preset}`);
  presetSel.value = p.id;
  lesson.textContent = p.lesson;
  if (p.yaml !== undefined) {
    editor.setText(p.yaml);
    objectsForm.show(p.yaml);
    return;
  }
  const text = editsText(p, source.edits?.length ? source.edits : withService(p, [], p.shown ?? 0));
  editor.setText(text);
  objectsForm.show(text);
  scenePick.hidden = false;
  sceneIndex.max = String((p.size ?? 1) - 1);
}

function showMode(): void {
  modeSel.value = state.mode;
  schedSel.value = state.scheduler;
  schedSel.disabled = state.mode !== 'ipvs';
  document.body.dataset.mode = state.mode;
}

/** `redraw` draws what the edit being loaded changed in the inputs, in the same update as its answer. */
async function load(fresh: boolean, redraw?: () => void): Promise<void> {
  // The packet (the form as the last explain left it) is explained in the same call: one round
  // trip and one rules view drawn, not two.
  let r: Result<'load'>;
  let packet: PacketSpec | undefined;
  try {
    form.spec = state.packet;
    packet = form.problem() ? undefined : form.spec;
    r = await call('load', {
      source: state.objects, ...modeConfig(), fresh, ...(packet ? { explain: { packet: toWire(packet), nowMs: state.clockMs } } : {}),
    });
  } finally {
    redraw?.();
  }
  editor.showIssues(r.issues);
  if (r.services) form.setServices(r.services, r.serviceCount);
  form.spec = state.packet;
  renderChange(r.change, state.mode, r.ms, r.phases);
  byId('summary').textContent = `${r.serviceCount.toLocaleString('en-US')} Service(s) · ${state.mode}${state.mode === 'ipvs' ? ` (${state.scheduler})` : ''} · loaded in ${r.ms} ms`;
  if (packet && r.packet) {
    state.packet = packet;
    showPacket(r.packet);
  } else {
    renderRules(r.views);
    if (r.packetError !== undefined) showProgress(null, r.packetError);
    else await explain(false);
  }
  saveHash();
}

async function explain(send: boolean): Promise<void> {
  const problem = form.problem();
  if (problem) { showProgress(null, problem); return; }
  state.packet = form.spec;
  showPacket(await call('packet', { packet: toWire(state.packet), nowMs: state.clockMs, send }));
  saveHash();
}

function showPacket(r: Result<'packet'>): void {
  renderPacket(r);
  renderRules(r.trace.rules);
  renderConntrack(r.conntrack, state.clockMs);
}

async function sendMany(count: number): Promise<void> {
  const problem = form.problem();
  if (problem) { showProgress(null, problem); return; }
  state.packet = form.spec;
  const r = await call('send', { packet: toWire(state.packet), nowMs: state.clockMs, count });
  renderChart(r.trace.longRun ?? r.trace.outcomes, r.measured);
  await explain(false);   // the packet's odds now, after the burst (affinity, conntrack)
}

async function restore(s: ShareState): Promise<void> {
  state = s;
  showObjects(s.objects);
  showMode();
  form.spec = s.packet;
  fill(byId('chart'));
  fill(byId('compare-out'));
  await load(true);
  rehearseForm();
}

/**
 * After a new scene, the form's commonest edit is rehearsed (objects-form rehearse()) a few
 * times, one run per idle period and none while a call is in flight, so the scene's first edits
 * run on optimized code without a click ever waiting for more than one run.
 */
const REHEARSALS = 8;
function rehearseForm(left = REHEARSALS): void {
  const idle = (globalThis as { requestIdleCallback?: (f: () => void, o?: { timeout: number }) => void }).requestIdleCallback;
  if (!idle || left === 0) return;
  idle(() => {
    if (core.busy === 0) objectsForm.rehearse();
    rehearseForm(left - 1);
  }, { timeout: 2000 });
}

// ---- events ----

presetSel.addEventListener('change', () => {
  const p = presetById(presetSel.value);
  if (!p) return;
  void restore({ objects: { preset: p.id }, mode: p.mode, scheduler: p.scheduler, packet: p.packet, clockMs: 0 }).catch(() => {});
});

/** Edits made (typed, shown or made in the form): an edit's inputs are redrawn only while it is the latest. */
let edits = 0;

/** `known`: the text's objects when the caller has them (a form edit), so the text is not parsed again. */
function edited(yaml: string, redrawInputs?: () => void, known?: unknown[]): void {
  const edit = ++edits;
  const redraw = redrawInputs && (() => { if (edit === edits) redrawInputs(); });
  const scene = 'preset' in state.objects ? presetById(state.objects.preset) : undefined;
  if (scene?.generate) {
    // A generated scene: the text holds the objects that replace generated ones.
    const { objects, issues } = known ? { objects: known, issues: [] } : editsFromText(yaml);
    if (issues.length) {
      redraw?.();
      editor.showIssues(issues);
      return;
    }
    state.objects = { preset: scene.id, edits: objects };
    void load(false, redraw).catch(() => {});
    return;
  }
  state.objects = { yaml };
  const same = PRESETS.find((p) => p.yaml === yaml);
  presetSel.value = same?.id ?? '';
  lesson.textContent = same?.lesson ?? '';
  void load(false, redraw).catch(() => {});
}

editor.onEdit = (yaml) => {
  objectsForm.show(yaml);
  edited(yaml);
};
byId('scene-show').addEventListener('click', () => {
  const scene = 'preset' in state.objects ? presetById(state.objects.preset) : undefined;
  const i = Number(sceneIndex.value);
  if (!scene?.generate || !Number.isInteger(i) || i < 0 || i >= (scene.size ?? 0)) {
    showProgress(null, `no Service svc-${sceneIndex.value} in this scene`);
    return;
  }
  const current = editsFromText(editor.value);
  if (current.issues.length) {
    editor.showIssues(current.issues);
    return;
  }
  const text = editsText(scene, withService(scene, current.objects, i));
  editor.setText(text);
  objectsForm.show(text, `default/svc-${i}`);
  edited(text);
});

objectsForm.onEdit = (yaml, redraw, objects) => {
  edited(yaml, () => {
    editor.setText(yaml);
    redraw();
  }, objects);
};

const onMode = () => {
  state.mode = modeSel.value as ShareState['mode'];
  state.scheduler = schedSel.value;
  showMode();
  void load(true).catch(() => {});
};
modeSel.addEventListener('change', onMode);
schedSel.addEventListener('change', onMode);

form.onChange = () => { void explain(false).catch(() => {}); };
byId('send-one').addEventListener('click', () => void explain(true).catch(() => {}));
byId('send-many').addEventListener('click', () => void sendMany(10_000).catch(() => {}));

for (const b of document.querySelectorAll<HTMLButtonElement>('[data-advance]')) {
  b.addEventListener('click', () => {
    state.clockMs += Number(b.dataset.advance);
    void explain(false).catch(() => {});
  });
}

byId('compare-run').addEventListener('click', () => {
  const scheds = [...document.querySelectorAll<HTMLInputElement>('#compare-scheds input:checked')].map((i) => i.value);
  const direct: ModeConfig[] = byId<HTMLInputElement>('compare-direct').checked ? [{ mode: 'direct', scheduler: 'rr' }] : [];
  const columns: ModeConfig[] = [{ mode: 'iptables', scheduler: 'rr' }, ...direct, ...scheds.map((s) => ({ mode: 'ipvs' as const, scheduler: s }))];
  state.packet = form.spec;
  void call('compare', { packet: toWire(state.packet), nowMs: state.clockMs, columns, count: 1000 }).then(renderCompare, () => {});
});

byId('share').addEventListener('click', async () => {
  const hash = await stateToHash(state);
  lastHash = hash;
  history.replaceState(null, '', hash);
  const url = location.href;
  byId<HTMLInputElement>('share-url').value = url;
  try {
    await navigator.clipboard.writeText(url);
    say('Link copied.');
  } catch {
    say('Link ready below (copy it).');
  }
});

byId('download').addEventListener('click', async () => {
  const bytes = await encodeState(state);
  const a = h('a', { href: URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' })), download: 'playground.svcplane' });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});

byId<HTMLInputElement>('open-file').addEventListener('change', async (e) => {
  const file = (e.target as HTMLInputElement).files?.[0];
  if (!file) return;
  try {
    await restore(await decodeState(new Uint8Array(await file.arrayBuffer())));
  } catch (err) {
    showProgress(null, (err as Error).message);
  }
});

window.addEventListener('hashchange', () => {
  if (location.hash === lastHash) return;
  void start();
});

/** A scene has been shown since the page opened. */
let opened = false;

async function start(): Promise<void> {
  let refused: string | null = null;
  let shared: ShareState | null = null;
  try {
    shared = await stateFromHash(location.hash);
  } catch (e) {
    refused = (e as Error).message;
  }
  if (shared) {
    lastHash = location.hash;
    opened = true;
    await restore(shared);
    return;
  }
  // A link the page cannot read keeps the scene shown, or opens on the first one, with the
  // reason in the status line.
  if (refused !== null && opened) {
    showProgress(null, refused);
    return;
  }
  opened = true;
  const p = PRESETS[0]!;
  await restore({ objects: { preset: p.id }, mode: p.mode, scheduler: p.scheduler, packet: p.packet, clockMs: 0 });
  if (refused !== null) showProgress(null, refused);
}

void start().catch(() => {});
