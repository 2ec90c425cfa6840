// results.ts — what happened to the packet: the verdict line, every possible outcome with its
// probability, the rules visited in order, the headers as they left the core, the outcome chart
// after a burst, the conntrack table at the virtual clock, and the mode comparison table.
// Renders what the worker sent; never decides anything about packets.
import type { PacketResult, CompareColumn, ConntrackRow } from '../engine/playground.js';
import type { TraceView } from '../engine/runner.js';
import type { Distribution, Outcome } from '../engine/outcomes.js';
import { chartRows, drawChart } from './chart.js';
import { byId, fill, h, percent } from './dom.js';

function outcomeRow(o: Outcome): HTMLTableRowElement {
  const cls = o.verdict === 'FORWARD' || o.verdict === 'PASS' ? 'v-ok' : 'v-bad';
  return h('tr', { 'data-key': o.key },
    h('td', {}, h('span', { class: `verdict ${cls}` }, o.verdict)),
    h('td', { class: 'mono' }, o.to ?? (o.reason !== 'none' ? o.reason : '—')),
    h('td', {}, o.masq ? 'masquerade' : ''),
    h('td', { class: 'num' }, percent(o.probability, 2)));
}

export function renderTrace(t: TraceView): void {
  fill(byId('outcomes'),
    h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'verdict'), h('th', {}, 'to'), h('th', {}, 'source NAT'), h('th', { class: 'num' }, 'probability'))),
      h('tbody', {}, ...t.outcomes.map(outcomeRow))),
    t.longRun ? h('p', { class: 'muted small' }, `The next new connection is certain (the scheduler takes turns); over many connections: ${t.longRun.map((o) => `${o.to} ${percent(o.probability)}`).join(', ')}.`) : null,
    t.existing ? h('p', { class: 'note small' }, 'This packet belongs to a connection the core already tracks: conntrack applies the NAT chosen for its first packet, and the nat rules are not consulted again. Change the source port (or send 10,000 new connections) to see a new connection.') : null,
    t.truncated ? h('p', { class: 'warn' }, 'More outcomes than the trace explores: the list is partial.') : null);
  fill(byId('steps'), h('ol', { class: 'steps' }, ...t.steps.map((s) => h('li', { class: s.matched ? 'matched' : 'skipped' },
    h('span', { class: 'where' }, s.where),
    h('code', {}, s.text),
    s.target ? h('span', { class: 'target' }, s.matched ? `→ ${s.target}` : '') : null))));
}

export function renderPacket(r: PacketResult): void {
  renderTrace(r.trace);
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

export function renderCompare(cols: CompareColumn[]): void {
  const keys: string[] = [];
  for (const c of cols) for (const k of [...c.outcomes.map((o) => o.key), ...c.measured.counts.map((m) => m.key)]) if (!keys.includes(k)) keys.push(k);
  const cell = (c: CompareColumn, k: string) => {
    const e = c.outcomes.find((o) => o.key === k)?.probability ?? 0;
    const m = (c.measured.counts.find((x) => x.key === k)?.count ?? 0) / Math.max(1, c.measured.sent);
    return { e, m };
  };
  const differs = (k: string) => {
    const ms = cols.map((c) => cell(c, k).m);
    return Math.max(...ms) - Math.min(...ms) > 0.1;
  };
  fill(byId('compare-out'), h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'outcome'), ...cols.map((c) => h('th', { class: 'num' }, c.label)))),
    h('tbody', {}, ...keys.map((k) => h('tr', { class: differs(k) ? 'differs' : '' },
      h('td', { class: 'mono' }, k),
      ...cols.map((c) => {
        const { e, m } = cell(c, k);
        return h('td', { class: 'num nowrap' }, percent(m), h('span', { class: 'muted' }, ` (exp ${percent(e, 0)})`));
      }))))),
  h('p', { class: 'muted small' }, `Measured share of ${cols[0]?.measured.sent ?? 0} new connections per mode, each on a fresh dataplane; in brackets what the trace expects. Rows where the modes differ by more than 10 points are highlighted.`));
}
