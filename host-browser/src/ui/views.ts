// views.ts — renders the worker's answers: the verdict and every outcome with its probability,
// the rules visited, the headers as they left the core, the outcome chart (measured bars next to
// expected marks, SVG), the conntrack table at the virtual clock, the mode comparison, the rule
// views side by side with the packet's path highlighted, and the sync's changes. Also the small
// DOM helpers the page shares. Never decides anything about packets or rules; the pairing of
// expected and measured outcomes (chartRows) is pure and tested without a page.
import type { PacketResult, CompareColumn, ConntrackRow } from '../engine/playground.js';
import type { SyncChange, TraceView } from '../engine/modes.js';
import type { Distribution, Outcome } from '../engine/outcomes.js';
import type { RulesView } from '../engine/rules-view.js';

// ---- DOM helpers ----

type Child = Node | string | null | undefined | false;

/** Builds an element: h('button', { class: 'x', onclick: … }, 'text', child…). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | EventListener | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** An element the page must have (index.html). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`playground page is missing #${id}`);
  return el as T;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&quot;'));
}

export function percent(x: number, digits = 1): string {
  return `${(x * 100).toFixed(digits)}%`;
}

/** Replaces an element's children. */
export function fill(el: HTMLElement, ...children: Child[]): void {
  el.replaceChildren(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
}

// ---- outcomes, trace, conntrack, compare ----

/** An outcome's row (data-key), then, when rules decided it, a row naming them (each rule's text on hover). */
function outcomeRows(o: Outcome): HTMLTableRowElement[] {
  const cls = o.verdict === 'FORWARD' || o.verdict === 'PASS' ? 'v-ok' : 'v-bad';
  const row = h('tr', { 'data-key': o.key },
    h('td', {}, h('span', { class: `verdict ${cls}` }, o.verdict)),
    h('td', { class: 'mono' }, o.to ?? (o.reason !== 'none' ? o.reason : '—')),
    h('td', {}, o.masq ? 'masquerade' : ''),
    h('td', { class: 'num' }, percent(o.probability, 2)));
  if (!o.by?.length) return [row];
  const rules = o.by.flatMap((b, i) => [i > 0 ? ' · ' : '', h('span', b.text ? { title: b.text } : {}, b.label)]);
  return [row, h('tr', { class: 'decided' }, h('td', { colspan: 4, class: 'mono small muted' }, 'decided by ', ...rules))];
}

export function renderTrace(t: TraceView): void {
  fill(byId('outcomes'),
    h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'verdict'), h('th', {}, 'to'), h('th', {}, 'source NAT'), h('th', { class: 'num' }, 'probability'))),
      h('tbody', {}, ...t.outcomes.flatMap(outcomeRows))),
    t.longRun ? h('p', { class: 'muted small' }, `The next new connection's server is already decided (rr takes turns, sh/mh hash it); over many new connections: ${t.longRun.map((o) => `${o.to} ${percent(o.probability)}`).join(', ')}.`) : null,
    t.existing ? h('p', { class: 'note small' }, 'This packet belongs to a connection the core already tracks: conntrack applies the NAT chosen for its first packet, and the nat rules are not consulted again. Change the source port (or send 10,000 new connections) to see a new connection.') : null,
    t.truncated ? h('p', { class: 'warn' }, 'More outcomes than the trace explores: the list is partial.') : null);
  fill(byId('steps'), h('ol', { class: 'steps' }, ...t.steps.map((s) => h('li', { class: s.matched ? 'matched' : 'skipped' },
    h('span', { class: 'where' }, s.where),
    h('code', {}, s.text),
    s.target ? h('span', { class: 'target' }, s.matched ? `→ ${s.target}` : '') : null))));
}

export function renderPacket(r: PacketResult): void {
  renderTrace(r.trace);
  const dns = r.dns;
  fill(byId('resolution'), dns ? h('p', { id: 'dns-resolution', class: 'mono small' },
    dns.address
      ? `${dns.name} → ${dns.asked.at(-1)!.name} → ${dns.address}:${dns.port}${dns.addresses.length > 1 ? ` (first of ${dns.addresses.join(', ')})` : ''}`
      : `${dns.name} does not resolve: ${dns.asked.map((a) => `${a.name} ${a.rcode}`).join(', ')}`) : null);
  const d = r.sent?.delivered;
  const el = byId('delivered');
  if (!d) { fill(el); return; }
  const cls = d.verdict === 'FORWARD' || d.verdict === 'PASS' ? 'v-ok' : 'v-bad';
  fill(el, h('p', { id: 'verdict' },
    'Sent: ', h('span', { class: `verdict ${cls}` }, d.verdict), d.reason ? ` (${d.reason})` : '', d.ctstate ? ` · conntrack ${d.ctstate}` : ''),
  d.out ? h('p', { class: 'mono' }, `left the core as ${d.out.src}:${d.out.sport} → ${d.out.dst}:${d.out.dport}${d.out.flags ? ` [${d.out.flags}]` : ''}${d.out.icmp ? ` icmp ${d.out.icmp}` : ''}`) : null);
}

export function renderChart(expected: Outcome[], measured: Distribution): void {
  fill(byId('chart'), drawChart(chartRows(expected, measured), measured.sent));
}

export function renderConntrack(rows: ConntrackRow[], clockMs: number): void {
  byId('clock').textContent = formatClock(clockMs);
  fill(byId('conntrack'), rows.length === 0 ? h('p', { class: 'muted' }, 'No flows.') : h('table', { class: 'table small' },
    h('thead', {}, h('tr', {}, ...['proto', 'original', 'reply', 'state', 'expires in', 'nat'].map((c) => h('th', {}, c)))),
    h('tbody', {}, ...rows.map((r) => h('tr', {},
      h('td', {}, r.proto), h('td', { class: 'mono' }, r.original), h('td', { class: 'mono' }, r.reply),
      h('td', {}, r.state), h('td', { class: 'num' }, `${r.expiresInS} s`), h('td', {}, r.nat))))));
}

export function formatClock(ms: number): string {
  const s = Math.floor(ms / 1000);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  return `t = ${hh ? `${hh} h ` : ''}${hh || mm ? `${mm} min ` : ''}${ss} s`;
}

/** Expected shares closer than this count as the same. */
const SAME_EXPECTED = 0.005;
/** Measured shares further apart than this (10 points) count as different. */
const MEASURED_SPREAD = 0.1;

/**
 * Which outcomes and columns differ: a row differs when the modes expect different shares or
 * measure shares more than 10 points apart; a cell differs from the first column (iptables, the
 * reference) when its expected or measured share does.
 */
export function compareDiffs(cols: CompareColumn[]): { keys: string[]; cell: (c: number, k: string) => { e: number; m: number; differs: boolean }; row: (k: string) => boolean; columns: string[] } {
  const keys: string[] = [];
  for (const c of cols) for (const k of [...c.outcomes.map((o) => o.key), ...c.measured.counts.map((m) => m.key)]) if (!keys.includes(k)) keys.push(k);
  const raw = (c: CompareColumn, k: string) => ({
    e: c.outcomes.find((o) => o.key === k)?.probability ?? 0,
    m: (c.measured.counts.find((x) => x.key === k)?.count ?? 0) / Math.max(1, c.measured.sent),
  });
  const apart = (a: { e: number; m: number }, b: { e: number; m: number }) => Math.abs(a.e - b.e) > SAME_EXPECTED || Math.abs(a.m - b.m) > MEASURED_SPREAD;
  const cell = (i: number, k: string) => {
    const here = raw(cols[i]!, k);
    return { ...here, differs: i > 0 && apart(here, raw(cols[0]!, k)) };
  };
  const row = (k: string) => cols.some((_, i) => cell(i, k).differs) || cols.some((a) => cols.some((b) => apart(raw(a, k), raw(b, k))));
  const columns = cols.slice(1).filter((_, i) => keys.some((k) => cell(i + 1, k).differs)).map((c) => c.label);
  return { keys, cell, row, columns };
}

export function renderCompare(cols: CompareColumn[]): void {
  const d = compareDiffs(cols);
  const ref = cols[0]?.label ?? '';
  const same = cols.slice(1).map((c) => c.label).filter((l) => !d.columns.includes(l));
  fill(byId('compare-out'),
    h('p', { id: 'compare-summary' },
      d.columns.length ? h('span', {}, h('b', {}, `Differs from ${ref}: `), d.columns.join(', '), '. ') : null,
      same.length ? h('span', {}, `Same as ${ref}: `, same.join(', '), '.') : null),
    h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'outcome'), ...cols.map((c) => h('th', { class: `num${d.columns.includes(c.label) ? ' col-differs' : ''}` }, c.label)))),
      h('tbody', {}, ...d.keys.map((k) => h('tr', { class: d.row(k) ? 'differs' : '', 'data-key': k },
        h('td', { class: 'mono', title: k }, k.replace(/^FORWARD → /, '→ ')),
        ...cols.map((_, i) => {
          const { e, m, differs } = d.cell(i, k);
          return h('td', { class: `num${differs ? ' cell-differs' : ''}` }, percent(m), h('div', { class: 'muted small' }, `exp ${percent(e, 0)}`));
        }))))),
    h('p', { class: 'muted small' }, `Measured share of ${cols[0]?.measured.sent ?? 0} new connections per mode, each on a fresh dataplane; under it, what the trace expects. Highlighted: outcomes where the modes differ, and each cell that differs from ${ref} (expected share, or measured by more than 10 points).`));
}

// ---- chart ----

export interface ChartRow {
  key: string;
  expected: number;
  measured: number;
  count: number;
}

/** Expected outcomes first (most likely first), then outcomes only seen in the measurement. */
export function chartRows(expected: Outcome[], measured: Distribution | undefined): ChartRow[] {
  const rows = new Map<string, ChartRow>();
  for (const o of expected) rows.set(o.key, { key: o.key, expected: o.probability, measured: 0, count: 0 });
  for (const c of measured?.counts ?? []) {
    const r = rows.get(c.key) ?? { key: c.key, expected: 0, measured: 0, count: 0 };
    r.count = c.count;
    r.measured = measured!.sent ? c.count / measured!.sent : 0;
    rows.set(c.key, r);
  }
  return [...rows.values()];
}

const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Draws the rows: label, measured bar, expected tick, the two percentages. */
export function drawChart(rows: ChartRow[], sent: number): SVGSVGElement {
  const rowH = 28, labelW = 150, barW = 170, pad = 8;
  const width = labelW + barW + 135;
  const height = pad * 2 + rows.length * rowH + 18;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', class: 'chart' });
  root.append(svg('title', {}, `Measured over ${sent} packets vs expected`));
  rows.forEach((r, i) => {
    const y = pad + i * rowH;
    const label = r.key.replace(/^FORWARD → /, '→ ');
    root.append(svg('text', { x: 0, y: y + 18, class: 'chart-label' }, label.length > 24 ? `${label.slice(0, 23)}…` : label));
    root.append(svg('rect', { x: labelW, y: y + 6, width: barW, height: 16, class: 'chart-track', rx: 3 }));
    const bar = svg('rect', { x: labelW, y: y + 6, width: Math.max(0, r.measured * barW), height: 16, class: 'chart-measured', rx: 3 });
    bar.setAttribute('data-key', r.key);
    bar.setAttribute('data-count', String(r.count));
    root.append(bar);
    const ex = labelW + r.expected * barW;
    root.append(svg('line', { x1: ex, x2: ex, y1: y + 2, y2: y + 26, class: 'chart-expected' }));
    root.append(svg('text', { x: labelW + barW + 8, y: y + 18, class: 'chart-value' }, `${percent(r.measured)} (exp ${percent(r.expected)})`));
  });
  const ly = pad + rows.length * rowH + 12;
  root.append(svg('rect', { x: labelW - 130, y: ly - 9, width: 12, height: 10, class: 'chart-measured', rx: 2 }));
  root.append(svg('text', { x: labelW - 114, y: ly, class: 'chart-legend' }, `measured (${sent.toLocaleString('en-US')} packets)`));
  root.append(svg('line', { x1: labelW + 200, x2: labelW + 200, y1: ly - 10, y2: ly + 2, class: 'chart-expected' }));
  root.append(svg('text', { x: labelW + 206, y: ly, class: 'chart-legend' }, 'expected'));
  return root;
}

// ---- rules and changes ----

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
  // Bring the packet's Service decision into sight: the first highlighted jump to a Service chain,
  // DNAT or REJECT, else the first highlighted line. In the next frame, whose layout reads the
  // positions: read now, they would force a layout of the page mid-update.
  requestAnimationFrame(() => {
    for (const pre of root.querySelectorAll<HTMLElement>('pre')) {
      const hits = [...pre.querySelectorAll<HTMLElement>('.hit')];
      const hit = hits.find((e) => /-j (KUBE-SVC-|KUBE-SVL-|KUBE-EXT-|DNAT|REJECT)/.test(e.textContent ?? '')) ?? hits[0];
      if (hit) pre.scrollTop = Math.max(0, hit.offsetTop - pre.offsetTop - 60);
    }
  });
}

export function renderChange(c: SyncChange, mode: string, ms: number, phases: Array<{ phase: string; ms: number }> = []): void {
  const root = byId('changes');
  const diff = c.diff;
  const lines = [...diff.removed.map((l) => `- ${l}`), ...diff.added.map((l) => `+ ${l}`)];
  const pre = h('pre', { class: 'diff' });
  const more = diff.addedTotal + diff.removedTotal - lines.length;
  pre.innerHTML = lines.map((l) => `<span class="${l.startsWith('+') ? 'add' : 'del'}">${escapeHtml(l)}</span>`).join('\n')
    + (more > 0 ? `\n<span class="muted">… ${more.toLocaleString('en-US')} more lines</span>` : '');
  const summary = c.full
    ? h('p', {}, `First sync (${mode}): everything written, ${diff.addedTotal.toLocaleString('en-US')} rule lines, in ${ms} ms.`)
    : h('p', {},
      mode === 'iptables'
        ? `kube-proxy's partial sync rewrote ${c.rewrittenChains.length} chain(s) whole${c.changedServices.length ? ` for ${c.changedServices.join(', ')}` : ''}; `
        : mode === 'direct'
          ? `The direct sync compiled the changed Service ports into the core's table (${c.rewrittenChains.join('; ') || 'nothing written'})${c.changedServices.length ? ` for ${c.changedServices.join(', ')}` : ''}; `
          : `kube-proxy's ipvs sync re-sent the whole table; `,
      h('b', {}, `${diff.addedTotal} line(s) added, ${diff.removedTotal} removed`),
      mode === 'direct' ? ` in ${c.changedChains.count} entr${c.changedChains.count === 1 ? 'y' : 'ies'}. ${ms} ms.` : ` in ${c.changedChains.count} chain(s). ${ms} ms.`);
  const timing = phases.length > 1
    ? h('p', { class: 'muted small' }, phases.filter((p) => p.ms > 0).map((p) => `${p.phase} ${p.ms} ms`).join(' · '))
    : null;
  fill(root, summary, timing,
    c.rewrittenChains.length && !c.full && mode === 'iptables' ? h('details', {}, h('summary', {}, 'Chains in kube-proxy\'s restore'), h('p', { class: 'mono small' }, c.rewrittenChains.join('  '))) : null,
    lines.length ? pre : h('p', { class: 'muted' }, 'No rule changed.'));
}
