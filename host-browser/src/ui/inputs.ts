// inputs.ts — the two input panes. The objects editor: a YAML textarea with a line-number
// gutter, the control plane's issues under it (line, object, field, message) with their lines
// marked, a click on an issue selecting its line. The packet builder: from a pod / this node /
// outside, to a Service port by name, any address, a NodePort on this node, or a DNS name
// (resolved in the worker, a pod's search path applied); protocol and ports; picking a Service
// fills in its address. The resolution rules (resolveTarget, toWire) are pure and tested without
// a page. Neither talks to the worker: the page passes text and answers in and out.
import type { ManifestIssue } from '../../../host-node/kube/index.js';
import type { ServiceEntry } from '../engine/playground.js';
import type { WirePacket } from '../engine/outcomes.js';
import { NODE, type PacketSpec, type Proto } from '../presets.js';
import { byId, fill, h } from './views.js';
import { CLUSTER_DOMAIN, searchFor } from '../engine/names.js';

export class Editor {
  private readonly text = byId<HTMLTextAreaElement>('yaml');
  private readonly gutter = byId('gutter');
  private readonly issues = byId('issues');
  private bad = new Set<number>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private gutterHtml = '';
  private scrollFrame = 0;

  /** Called (debounced) when the user changes the text. */
  onEdit: (yaml: string) => void = () => {};

  constructor() {
    this.text.addEventListener('input', () => {
      this.renderGutter();
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.onEdit(this.text.value), 450);
    });
    this.text.addEventListener('scroll', () => { this.gutter.scrollTop = this.text.scrollTop; });
    this.text.addEventListener('keydown', (e) => {
      if (e.key === 'Tab') {   // two spaces, as YAML wants
        e.preventDefault();
        this.text.setRangeText('  ', this.text.selectionStart, this.text.selectionEnd, 'end');
        this.text.dispatchEvent(new Event('input'));
      }
    });
  }

  get value(): string {
    return this.text.value;
  }

  /** Shows text to edit. */
  setText(yaml: string): void {
    this.text.value = yaml;
    this.bad.clear();
    this.renderGutter();
  }

  showIssues(list: ManifestIssue[]): void {
    this.bad = new Set(list.map((i) => i.line).filter((l): l is number => l !== undefined));
    this.renderGutter();
    if (list.length === 0) {
      fill(this.issues, h('p', { class: 'ok' }, 'All objects valid.'));
      return;
    }
    fill(this.issues, h('ul', {}, ...list.map((i) => h('li', {
      class: 'issue',
      onclick: () => i.line !== undefined && this.selectLine(i.line),
      title: 'Show the line',
    },
    h('span', { class: 'issue-line' }, i.line !== undefined ? `line ${i.line}` : 'document'),
    ' ', i.object ? h('b', {}, i.object) : null, i.path ? h('code', {}, i.path) : null, ' ', i.message))));
  }

  /** Selects line n (1-based) and scrolls it into view. */
  selectLine(n: number): void {
    const lines = this.text.value.split('\n');
    let start = 0;
    for (let i = 0; i < n - 1 && i < lines.length; i++) start += lines[i]!.length + 1;
    this.text.focus();
    this.text.setSelectionRange(start, start + (lines[n - 1]?.length ?? 0));
    const lineH = parseFloat(getComputedStyle(this.text).lineHeight) || 18;
    this.text.scrollTop = Math.max(0, (n - 4) * lineH);
  }

  private renderGutter(): void {
    const n = this.text.value.split('\n').length;
    const parts: string[] = [];
    for (let i = 1; i <= n; i++) parts.push(this.bad.has(i) ? `<span class="bad">${i}</span>` : String(i));
    const html = parts.join('\n');
    if (html !== this.gutterHtml) {
      this.gutterHtml = html;
      this.gutter.innerHTML = html;
    }
    // Read in the next frame: reading scrollTop now would lay out the whole page in the middle of
    // an update (a 20,000-Service rules view takes milliseconds), and again for every later change.
    cancelAnimationFrame(this.scrollFrame);
    this.scrollFrame = requestAnimationFrame(() => { this.gutter.scrollTop = this.text.scrollTop; });
  }
}

// ---- packet builder ----

export const DEFAULT_SOURCE: Record<PacketSpec['from'], string> = { pod: '10.244.1.5', node: NODE.ip, outside: '203.0.113.7' };

/** The destination a Service entry gives for the form's choice of target. */
export function resolveTarget(spec: PacketSpec, entries: ServiceEntry[]): { dst: string; dport: number; proto: Proto } | null {
  const e = entries.find((x) => x.id === spec.service);
  if (!e || spec.to === 'vip') return null;
  const proto = (['tcp', 'udp', 'sctp'].includes(e.protocol) ? e.protocol : 'tcp') as Proto;
  if (spec.to === 'nodeport') return e.nodePort ? { dst: NODE.ip, dport: e.nodePort, proto } : null;
  if (spec.to === 'name') {
    // The Service's full name (Kubernetes DNS spec: <service>.<ns>.svc.<zone>); a pod may shorten it.
    const [ns, rest] = e.id.split('/') as [string, string];
    return { dst: `${rest.slice(0, rest.lastIndexOf(':'))}.${ns}.svc.${CLUSTER_DOMAIN}`, dport: e.port, proto };
  }
  return { dst: e.clusterIP, dport: e.port, proto };
}

export function toWire(spec: PacketSpec): WirePacket {
  const w: WirePacket = { src: spec.src.trim(), dst: spec.dst.trim(), proto: spec.proto, sport: spec.sport, dport: spec.dport, local: spec.from === 'node' };
  if (spec.to !== 'name') return w;
  return { ...w, dst: '', name: spec.dst.trim(), search: searchFor(spec.from) };
}

/** A DNS name the builder accepts (RFC 1035 letters, digits, hyphens; SRV labels start with _). */
const NAME = /^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*\.?$/i;

export class PacketForm {
  private readonly from = byId<HTMLSelectElement>('pk-from');
  private readonly src = byId<HTMLInputElement>('pk-src');
  private readonly to = byId<HTMLSelectElement>('pk-to');
  private readonly service = byId<HTMLSelectElement>('pk-service');
  private readonly dst = byId<HTMLInputElement>('pk-dst');
  private readonly dport = byId<HTMLInputElement>('pk-dport');
  private readonly proto = byId<HTMLSelectElement>('pk-proto');
  private readonly sport = byId<HTMLInputElement>('pk-sport');
  private entries: ServiceEntry[] = [];

  /** Called when the user changes the packet. */
  onChange: () => void = () => {};

  constructor() {
    this.from.addEventListener('change', () => {
      this.src.value = DEFAULT_SOURCE[this.from.value as PacketSpec['from']];
      this.changed();
    });
    this.to.addEventListener('change', () => { this.applyTarget(); this.changed(); });
    this.service.addEventListener('change', () => { this.applyTarget(); this.changed(); });
    for (const el of [this.src, this.dst, this.dport, this.sport, this.proto]) el.addEventListener('change', () => this.changed());
  }

  private changed(): void {
    this.service.disabled = this.to.value === 'vip';
    this.dst.placeholder = this.to.value === 'name' ? 'web.default.svc.cluster.local' : '';
    this.onChange();
  }

  private applyTarget(): void {
    const t = resolveTarget(this.spec, this.entries);
    if (!t) return;
    this.dst.value = t.dst;
    this.dport.value = String(t.dport);
    this.proto.value = t.proto;
  }

  setServices(entries: ServiceEntry[], total: number): void {
    this.entries = entries;
    const keep = this.service.value;
    this.service.replaceChildren(...entries.map((e) => h('option', { value: e.id }, `${e.id}  (${e.clusterIP}:${e.port}${e.nodePort ? `, node port ${e.nodePort}` : ''})`)));
    if (total > entries.length) this.service.append(h('option', { disabled: true }, `… ${total - entries.length} more: type the address`));
    if (entries.some((e) => e.id === keep)) this.service.value = keep;
  }

  get spec(): PacketSpec {
    return {
      from: this.from.value as PacketSpec['from'], src: this.src.value, to: this.to.value as PacketSpec['to'],
      service: this.service.value, dst: this.dst.value, dport: Number(this.dport.value) || 0,
      proto: this.proto.value as Proto, sport: Number(this.sport.value) || 0,
    };
  }

  // Only fields whose value differs are written: the page sets the spec after every answer, and a
  // write, even of the same value, makes the browser restyle the field (the service list holds
  // up to 500 options).
  set spec(p: PacketSpec) {
    put(this.from, p.from);
    put(this.src, p.src);
    put(this.to, p.to);
    if (this.service.value !== p.service) {
      this.service.value = p.service;
      if (this.service.value !== p.service) {
        this.service.append(h('option', { value: p.service }, p.service));
        this.service.value = p.service;
      }
    }
    this.service.disabled = p.to === 'vip';
    this.dst.placeholder = p.to === 'name' ? 'web.default.svc.cluster.local' : '';
    put(this.dst, p.dst);
    put(this.dport, String(p.dport));
    put(this.proto, p.proto);
    put(this.sport, String(p.sport));
  }

  /** A message when the packet cannot be built, else null. */
  problem(): string | null {
    const p = this.spec;
    const ip = /^(\d{1,3}\.){3}\d{1,3}$|^[0-9a-fA-F:]+$/;
    if (!ip.test(p.src.trim())) return `source "${p.src}" is not an IP address`;
    if (p.to === 'name' ? !NAME.test(p.dst.trim()) : !ip.test(p.dst.trim())) return p.to === 'name' ? `destination "${p.dst}" is not a DNS name` : `destination "${p.dst}" is not an IP address`;
    if (!(p.dport >= 1 && p.dport <= 65535)) return 'destination port must be 1–65535';
    if (!(p.sport >= 1 && p.sport <= 65535)) return 'source port must be 1–65535';
    return null;
  }
}

/** Writes `value` into a field unless it holds it already. */
function put(el: HTMLInputElement | HTMLSelectElement, value: string): void {
  if (el.value !== value) el.value = value;
}
