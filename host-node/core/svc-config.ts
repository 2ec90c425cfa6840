// svc-config.ts — encodes a list of services (VIP, port, protocol, destinations) into the core's
// direct service table blob (format in assembly/svc/table.ts). Validates every field and names the
// service and field at fault; never talks to the core itself.
import { ipWords, tryParseIP } from './words.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP' | 'ICMP';
const PROTO_NUM: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132, ICMP: 1 };

export interface ServiceSpec {
  /** A name for messages and traces, e.g. "default/web:http". */
  name?: string;
  vip: string;
  port: number;
  protocol?: Protocol;
  /** Destinations as "ip:port" or "[ipv6]:port". */
  endpoints: string[];
  /** Masquerade every new flow (kube-proxy --masquerade-all). */
  masqueradeAll?: boolean;
  /** With no endpoints: answer with REJECT (kube-proxy's default) or drop (ETP=Local, none local). */
  whenEmpty?: 'reject' | 'drop';
}

export class ServiceConfigError extends Error {
  constructor(readonly service: string, readonly field: string, message: string) {
    super(`service ${service}: ${field}: ${message}`);
  }
}

const MAGIC = 0x31435653;
const HEADER = 16;
const SVC_BYTES = 48;
const DEST_BYTES = 24;

export function splitHostPort(text: string): { host: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) return null;
  return { host: m[1]!, port: Number(m[2]) };
}

function validPort(p: number): boolean {
  return Number.isInteger(p) && p >= 0 && p <= 65535;
}

export function encodeServices(specs: ServiceSpec[]): Uint8Array {
  const destTotal = specs.reduce((n, s) => n + (s.endpoints?.length ?? 0), 0);
  const buf = new Uint8Array(HEADER + specs.length * SVC_BYTES + destTotal * DEST_BYTES);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, 1, true);
  dv.setUint32(8, specs.length, true);
  dv.setUint32(12, destTotal, true);
  let dest = 0;
  const destBase = HEADER + specs.length * SVC_BYTES;
  specs.forEach((s, i) => {
    const name = s.name ?? `#${i} ${s.vip}:${s.port}`;
    const vip = tryParseIP(s.vip);
    if (!vip) throw new ServiceConfigError(name, 'vip', `not an IP address: ${JSON.stringify(s.vip)}`);
    if (!validPort(s.port) || s.port === 0) throw new ServiceConfigError(name, 'port', `out of range: ${s.port}`);
    const proto = s.protocol ?? 'TCP';
    if (!(proto in PROTO_NUM)) throw new ServiceConfigError(name, 'protocol', `unknown protocol ${JSON.stringify(proto)}`);
    const family = vip.length === 4 ? 4 : 6;
    const o = HEADER + i * SVC_BYTES;
    let flags = 0;
    if (s.masqueradeAll) flags |= 1;
    flags |= s.whenEmpty === 'drop' ? 4 : 2;
    dv.setUint8(o, family);
    dv.setUint8(o + 1, PROTO_NUM[proto]);
    dv.setUint16(o + 2, flags, true);
    dv.setUint16(o + 4, s.port, true);
    ipWords(vip).forEach((w, k) => dv.setUint32(o + 8 + 4 * k, w, true));
    dv.setUint32(o + 24, dest, true);
    dv.setUint32(o + 28, s.endpoints.length, true);
    dv.setUint32(o + 36, i, true);
    s.endpoints.forEach((ep, k) => {
      const hp = splitHostPort(ep);
      const ip = hp && tryParseIP(hp.host);
      if (!hp || !ip) throw new ServiceConfigError(name, `endpoints[${k}]`, `expected ip:port, got ${JSON.stringify(ep)}`);
      if (ip.length !== vip.length) throw new ServiceConfigError(name, `endpoints[${k}]`, `address family differs from the VIP's`);
      if (!validPort(hp.port) || hp.port === 0) throw new ServiceConfigError(name, `endpoints[${k}]`, `port out of range: ${hp.port}`);
      const d = destBase + dest * DEST_BYTES;
      ipWords(ip).forEach((w, j) => dv.setUint32(d + 4 * j, w, true));
      dv.setUint16(d + 16, hp.port, true);
      dv.setUint16(d + 18, 1, true);
      dest++;
    });
  });
  return buf;
}
