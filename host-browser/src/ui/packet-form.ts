// packet-form.ts — the packet builder: where the packet comes from (a pod, this node, outside),
// where it goes (a Service port by name, any address, a NodePort on this node), protocol and
// ports. Picking a Service fills in its address; the form always holds a concrete packet. The
// resolution rules (resolveTarget, toWire) are pure and tested without a page.
import type { ServiceEntry } from '../engine/playground.js';
import type { WirePacket } from '../engine/outcomes.js';
import { NODE, type PacketSpec, type Proto } from '../presets.js';
import { byId, h } from './dom.js';

export const DEFAULT_SOURCE: Record<PacketSpec['from'], string> = { pod: '10.244.1.5', node: NODE.ip, outside: '203.0.113.7' };

/** The destination a Service entry gives for the form's choice of target. */
export function resolveTarget(spec: PacketSpec, entries: ServiceEntry[]): { dst: string; dport: number; proto: Proto } | null {
  const e = entries.find((x) => x.id === spec.service);
  if (!e || spec.to === 'vip') return null;
  const proto = (['tcp', 'udp', 'sctp'].includes(e.protocol) ? e.protocol : 'tcp') as Proto;
  if (spec.to === 'nodeport') return e.nodePort ? { dst: NODE.ip, dport: e.nodePort, proto } : null;
  return { dst: e.clusterIP, dport: e.port, proto };
}

export function toWire(spec: PacketSpec): WirePacket {
  return { src: spec.src.trim(), dst: spec.dst.trim(), proto: spec.proto, sport: spec.sport, dport: spec.dport, local: spec.from === 'node' };
}

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

  set spec(p: PacketSpec) {
    this.from.value = p.from;
    this.src.value = p.src;
    this.to.value = p.to;
    if (![...this.service.options].some((o) => o.value === p.service)) this.service.append(h('option', { value: p.service }, p.service));
    this.service.value = p.service;
    this.service.disabled = p.to === 'vip';
    this.dst.value = p.dst;
    this.dport.value = String(p.dport);
    this.proto.value = p.proto;
    this.sport.value = String(p.sport);
  }

  /** A message when the packet cannot be built, else null. */
  problem(): string | null {
    const p = this.spec;
    const ip = /^(\d{1,3}\.){3}\d{1,3}$|^[0-9a-fA-F:]+$/;
    if (!ip.test(p.src.trim())) return `source "${p.src}" is not an IP address`;
    if (!ip.test(p.dst.trim())) return `destination "${p.dst}" is not an IP address`;
    if (!(p.dport >= 1 && p.dport <= 65535)) return 'destination port must be 1–65535';
    if (!(p.sport >= 1 && p.sport <= 65535)) return 'source port must be 1–65535';
    return null;
  }
}
