// chart.ts — the outcome chart: for every outcome a bar of the measured share (packets really
// sent through the core) next to a marker of the expected probability (from the trace), as SVG
// with labels. The pairing of the two lists is pure (chartRows) so it is tested without a page.
// Never talks to the worker.
import type { Distribution, Outcome } from '../engine/outcomes.js';
import { percent } from './dom.js';

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
