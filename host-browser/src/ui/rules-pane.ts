// rules-pane.ts — the rules views (iptables-save; ipvsadm -Ln, ipset save and the ipvs-mode
// iptables), side by side, with the rules a traced packet touched highlighted, and the changes
// pane: what kube-proxy's sync rewrote versus the rule lines that really changed. Renders what
// the worker sent; never computes rules itself.
import type { RulesView } from '../engine/rules-view.js';
import type { SyncChange } from '../engine/runner.js';
import { byId, escapeHtml, fill, h } from './dom.js';

export function renderRules(views: RulesView[]): void {
  const root = byId('rules');
  fill(root, ...views.map((v) => {
    const html = v.lines.map((l) => (l.mark ? `<span class="rl ${l.mark}">${escapeHtml(l.text)}</span>` : escapeHtml(l.text))).join('\n');
    const pre = h('pre', { class: 'rules-text' });
    pre.innerHTML = html;
    const shown = v.lines.filter((l) => l.mark !== 'gap').length;
    return h('section', { class: 'rules-view', 'data-title': v.title },
      h('h3', {}, v.title, h('span', { class: 'muted' }, v.total > shown ? ` ${shown.toLocaleString('en-US')} of ${v.total.toLocaleString('en-US')} lines (chains the packet visited, fixed chains)` : ` ${v.total.toLocaleString('en-US')} lines`)),
      pre);
  }));
  // Bring the first highlighted rule of each view into sight.
  for (const pre of root.querySelectorAll<HTMLElement>('pre')) {
    const hit = pre.querySelector<HTMLElement>('.hit:not(:first-child)') ?? pre.querySelector<HTMLElement>('.hit');
    if (hit) pre.scrollTop = Math.max(0, hit.offsetTop - pre.offsetTop - 60);
  }
}

export function renderChange(c: SyncChange, mode: string, ms: number, phases: Array<{ phase: string; ms: number }> = []): void {
  const root = byId('changes');
  const diff = c.diff;
  const lines = [...diff.removed.map((l) => `- ${l}`), ...diff.added.map((l) => `+ ${l}`)];
  const pre = h('pre', { class: 'diff' });
  pre.innerHTML = lines.slice(0, 400).map((l) => `<span class="${l.startsWith('+') ? 'add' : 'del'}">${escapeHtml(l)}</span>`).join('\n')
    + (lines.length > 400 ? `\n<span class="muted">… ${lines.length - 400} more lines</span>` : '');
  const summary = c.full
    ? h('p', {}, `First sync (${mode}): everything written, ${diff.added.length.toLocaleString('en-US')} rule lines, in ${ms} ms.`)
    : h('p', {},
      mode === 'iptables'
        ? `kube-proxy's partial sync rewrote ${c.rewrittenChains.length} chain(s) whole${c.changedServices.length ? ` for ${c.changedServices.join(', ')}` : ''}; `
        : `kube-proxy's ipvs sync re-sent the whole table; `,
      h('b', {}, `${diff.added.length} line(s) added, ${diff.removed.length} removed`),
      ` in ${c.changedChains.length} chain(s). ${ms} ms.`);
  const timing = phases.length > 1
    ? h('p', { class: 'muted small' }, phases.filter((p) => p.ms > 0).map((p) => `${p.phase} ${p.ms} ms`).join(' · '))
    : null;
  fill(root, summary, timing,
    c.rewrittenChains.length && !c.full ? h('details', {}, h('summary', {}, 'Chains in kube-proxy\'s restore'), h('p', { class: 'mono small' }, c.rewrittenChains.join('  '))) : null,
    lines.length ? pre : h('p', { class: 'muted' }, 'No rule changed.'));
}
