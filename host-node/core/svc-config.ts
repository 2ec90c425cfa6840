// svc-config.ts — encodes services for the core's direct service table: a whole list of
// VIP:port services as one SVC1 blob (format in assembly/svc/blob.ts), or per-service put /
// delete / clear operations with kube-proxy's policy flags (assembly/svc/table.ts), framed in a
// buffer of its own or in place in the core's config buffer, and runs those through svcApply; reads back
// a ClientIP-affinity client's destination. Validates every field and names the service and field at fault;
// never reads Kubernetes objects (host-node/kube/render-direct.ts builds the services).
import { ipWords, tryParseIP } from './words.js';
import { joinHostPort, splitHostPort as splitAddress } from '../kube/ip.js';
import { formatIP, said } from './packet.js';

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
  const hp = splitAddress(text);
  return hp && hp.host !== '' ? hp : null;
}

function validPort(p: number): boolean {
  return Number.isInteger(p) && p >= 0 && p <= 65535;
}

export function encodeServices(specs: ServiceSpec[]): Uint8Array {
  specs.forEach((s, i) => {
    if (s === null || typeof s !== 'object') throw new ServiceConfigError(`#${i}`, 'spec', `a service is { vip, port, endpoints, … }, not ${said(s)}`);
  });
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
    if (!vip) throw new ServiceConfigError(name, 'vip', `not an IP address: ${said(s.vip)}`);
    if (!validPort(s.port) || s.port === 0) throw new ServiceConfigError(name, 'port', `out of range: ${s.port}`);
    const proto = s.protocol ?? 'TCP';
    if (!Object.hasOwn(PROTO_NUM, proto)) throw new ServiceConfigError(name, 'protocol', `unknown protocol ${said(proto)}`);
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
      if (!hp || !ip) throw new ServiceConfigError(name, `endpoints[${k}]`, `expected ip:port, got ${said(ep)}`);
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

// ---- the direct service table, one service at a time (assembly/svc/table.ts)

/** Which of kube-proxy's entry rules a frontend stands for. */
export type FrontendKind = 'cluster' | 'external' | 'loadBalancer' | 'nodePort';
/**
 * The core's code of a frontend kind (0 for anything else). Comparisons rather than a table: a
 * lookup by a computed key costs more than the rest of the frontend's encoding (20,000 in a full sync).
 */
const feKind = (k: string): number => (k === 'cluster' ? 1 : k === 'external' ? 2 : k === 'loadBalancer' ? 3 : k === 'nodePort' ? 4 : 0);

export interface DirectEndpoint { ip: string; port: number }

/** One service port of one family as the core's direct table holds it. */
export interface DirectService {
  /** For messages, e.g. "default/web:http". */
  name: string;
  family: 4 | 6;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  /** Echoed in the packet's aux field. */
  hostId: number;
  /** Addresses (and ports) that reach the service; node ports carry no address. */
  frontends: Array<{ kind: FrontendKind; ip?: string; port: number }>;
  /** Endpoints for Cluster traffic policy and for Local policy. */
  cluster: DirectEndpoint[];
  local: DirectEndpoint[];
  /** Sources allowed to load-balancer frontends when `firewall` (CIDRs or single addresses). */
  sourceRanges: string[];
  /** Some usable endpoint exists anywhere (else REJECT). */
  hasEndpoints: boolean;
  masqueradeAll: boolean;
  internalLocal: boolean;
  externalLocal: boolean;
  firewall: boolean;
  /** ClientIP affinity timeout in ms; 0 = no affinity. */
  affinityMs: number;
}

export type DirectOp = { op: 'put'; slot: number; svc: DirectService } | { op: 'delete'; slot: number } | { op: 'clear' };

const SVD_MAGIC = 0x31445653;
const SVD_HEADER = 40;
const FE_BYTES = 24;
const SVD_DEST_BYTES = 20;
const RANGE_BYTES = 20;
/** The IP protocol number of a service's protocol, 0 for anything else (as feKind). */
const l4 = (p: string): number => (p === 'TCP' ? 6 : p === 'UDP' ? 17 : p === 'SCTP' ? 132 : 0);

/** Direct-table error codes (assembly/svc/table.ts). */
export const DIRECT_ERRORS: Record<number, string> = {
  [-1]: 'bad magic', [-3]: 'more than one service holds (4,096 frontend addresses, 4,096 source ranges, 2^20 endpoints), or a malformed blob', [-4]: 'bad address family', [-6]: 'address and port already taken by another service',
  [-7]: 'out of memory', [-8]: 'no such service slot', [-9]: 'field out of range',
};

function blobBytes(s: DirectService): number {
  return SVD_HEADER + s.frontends.length * FE_BYTES + (s.cluster.length + s.local.length) * SVD_DEST_BYTES + s.sourceRanges.length * RANGE_BYTES;
}

function writeAddr(dv: DataView, at: number, ip: Uint8Array): void {
  const w = ipWords(ip);
  for (let k = 0; k < 4; k++) dv.setUint32(at + 4 * k, w[k]!, true);
}

/**
 * Word 0 of a dotted-quad IPv4 address, or -1 when `text` is not one (full syncs write hundreds of
 * thousands of addresses: no allocation here).
 */
function ipv4Word(text: string): number {
  let word = 0, part = 0, digits = 0, dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      word |= part << (8 * dots);
      dots++; part = 0; digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3 && !(digits > 0 && part === 0)) {
      part = part * 10 + (c - 48);
      digits++;
      if (part > 255) return -1;
    } else return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return (word | (part << 24)) >>> 0;
}

/** A field's name for messages, e.g. "cluster[3].port"; built only when something is wrong. */
const fieldName = (list: string, i: number, sub: string): string => `${list}[${i}]${sub}`;

function ipOf(s: DirectService, text: string | undefined, field: string): Uint8Array {
  const ip = text === undefined ? null : tryParseIP(text);
  if (!ip) throw new ServiceConfigError(s.name, field, `not an IP address: ${said(text)}`);
  if ((ip.length === 4 ? 4 : 6) !== s.family) throw new ServiceConfigError(s.name, field, `not an IPv${s.family} address: ${text}`);
  return ip;
}

/** Writes the address words of `text` (element `i` of `list`) at `at`. */
function writeListAddr(dv: DataView, at: number, s: DirectService, text: string | undefined, list: string, i: number, sub: string): void {
  const w = s.family === 4 && text !== undefined ? ipv4Word(text) : -1;
  if (w < 0) return writeAddr(dv, at, ipOf(s, text, fieldName(list, i, sub)));
  dv.setUint32(at, w, true);
  dv.setUint32(at + 4, 0, true);
  dv.setUint32(at + 8, 0, true);
  dv.setUint32(at + 12, 0, true);
}

function portOf(s: DirectService, p: number, list: string, i: number): number {
  if (!validPort(p) || p === 0) throw new ServiceConfigError(s.name, fieldName(list, i, '.port'), `port out of range: ${p}`);
  return p;
}

/** Writes endpoint list `field` of `s` at `o`; returns the offset after it. */
function writeDests(dv: DataView, o: number, s: DirectService, list: DirectEndpoint[], field: string): number {
  for (let i = 0; i < list.length; i++) {
    const ep = list[i]!;
    writeListAddr(dv, o, s, ep.ip, field, i, '');
    dv.setUint16(o + 16, portOf(s, ep.port, field, i), true);
    dv.setUint16(o + 18, 0, true);
    o += SVD_DEST_BYTES;
  }
  return o;
}

/** Writes one service blob at `at`; throws a ServiceConfigError naming the field at fault. */
function writeService(dv: DataView, at: number, s: DirectService): void {
  const proto = l4(s.protocol);
  if (proto === 0) throw new ServiceConfigError(s.name, 'protocol', `unknown protocol ${said(s.protocol)}`);
  if (s.frontends.length === 0) throw new ServiceConfigError(s.name, 'frontends', 'no address reaches the service');
  const flags = (s.affinityMs > 0 ? 1 : 0) | (s.masqueradeAll ? 2 : 0) | (s.internalLocal ? 4 : 0) | (s.externalLocal ? 8 : 0)
    | (s.hasEndpoints ? 16 : 0) | (s.firewall ? 32 : 0);
  dv.setUint32(at, SVD_MAGIC, true);
  dv.setUint8(at + 4, s.family);
  dv.setUint8(at + 5, proto);
  dv.setUint16(at + 6, 0, true);
  dv.setUint32(at + 8, flags, true);
  dv.setUint32(at + 12, Math.min(Math.max(0, Math.round(s.affinityMs)), 0x7fffffff), true);
  dv.setUint32(at + 16, s.hostId >>> 0, true);
  dv.setUint32(at + 20, s.frontends.length, true);
  dv.setUint32(at + 24, s.cluster.length, true);
  dv.setUint32(at + 28, s.local.length, true);
  dv.setUint32(at + 32, s.sourceRanges.length, true);
  dv.setUint32(at + 36, 0, true);
  let o = at + SVD_HEADER;
  for (let i = 0; i < s.frontends.length; i++) {
    const fe = s.frontends[i]!;
    dv.setUint8(o, feKind(fe.kind));
    dv.setUint8(o + 1, 0);
    dv.setUint16(o + 2, portOf(s, fe.port, 'frontends', i), true);
    dv.setUint32(o + 4, 0, true);
    if (fe.kind === 'nodePort') for (let k = 0; k < 16; k += 4) dv.setUint32(o + 8 + k, 0, true);
    else writeListAddr(dv, o + 8, s, fe.ip, 'frontends', i, '.ip');
    o += FE_BYTES;
  }
  o = writeDests(dv, o, s, s.cluster, 'cluster');
  o = writeDests(dv, o, s, s.local, 'local');
  for (let i = 0; i < s.sourceRanges.length; i++) {
    const text = s.sourceRanges[i]!;
    const [addr, len] = text.split('/');
    const ip = ipOf(s, addr, `sourceRanges[${i}]`);
    const bits = len === undefined ? ip.length * 8 : Number(len);
    if (!Number.isInteger(bits) || bits < 0 || bits > ip.length * 8) throw new ServiceConfigError(s.name, `sourceRanges[${i}]`, `not a CIDR: ${said(text)}`);
    writeAddr(dv, o, ip);
    dv.setUint32(o + 16, bits, true);
    o += RANGE_BYTES;
  }
}

const OP_PUT = 1, OP_DELETE = 2, OP_CLEAR = 3;

/** Frame bytes of one op: op u32, slot i32 (result written back), length u32, blob padded to 4 bytes. */
const frameBytes = (svc: DirectService | null): number => 12 + (svc !== null ? (blobBytes(svc) + 3) & ~3 : 0);

/**
 * Writes one framed op (OP_*; `svc` only for a put) at `o`; returns the offset after it. Throws a
 * ServiceConfigError for a bad service.
 */
function writeOp(dv: DataView, o: number, op: number, slot: number, svc: DirectService | null): number {
  const len = svc !== null ? blobBytes(svc) : 0;
  if (svc !== null) writeService(dv, o + 12, svc);
  dv.setUint32(o, op, true);
  dv.setInt32(o + 4, op === OP_CLEAR ? 0 : slot, true);
  dv.setUint32(o + 8, len, true);
  return o + 12 + ((len + 3) & ~3);
}

/**
 * Frames operations for the core's svcApply: op u32, slot i32 (result written back), length u32,
 * blob padded to 4 bytes. An invalid service throws a ServiceConfigError naming the field, or,
 * with `skip`, is left out and reported to it (by op index).
 */
export function encodeDirectOps(ops: readonly DirectOp[], skip?: (index: number, error: ServiceConfigError) => void): Uint8Array {
  const out = new DirectOpBuffer(0);
  ops.forEach((op, i) => {
    const e = out.push(op);
    if (e === null) return;
    if (!skip) throw e;
    skip(i, e);
  });
  return out.bytes();
}

/**
 * Frame bytes of a put of a service with at most this many frontends, endpoints (Cluster and
 * Local lists together) and source ranges: room to reserve before rendering it.
 */
export function putFrameBound(frontends: number, endpoints: number, ranges: number): number {
  return 12 + SVD_HEADER + frontends * FE_BYTES + endpoints * SVD_DEST_BYTES + ranges * RANGE_BYTES;
}

/**
 * Framed operations built up one at a time, in a buffer of its own that is kept and reused (a
 * full sync of 20,000 services writes megabytes: no per-op or per-sync allocation once it has
 * grown), or straight into the core's config buffer (resetInCore: no copy, no JS buffer at all).
 */
export class DirectOpBuffer {
  private own: Uint8Array;
  private buf: Uint8Array;
  private dv: DataView;
  private end = 0;
  /** The core whose config buffer `buf` is, while the ops are written there. */
  private inCore: DirectCore | null = null;

  constructor(initial = 1 << 16) {
    this.own = this.buf = new Uint8Array(initial);
    this.dv = new DataView(this.buf.buffer);
  }

  /** Starts a new batch (the bytes of the last one are overwritten). */
  reset(): void {
    this.inCore = null;
    this.buf = this.own;
    this.dv = new DataView(this.own.buffer);
    this.end = 0;
  }

  /**
   * Starts a new batch written in place in `core`'s config buffer, with room for `bytes` (ops
   * beyond that move the batch to the buffer of its own). No call into the core may come before
   * run(): it could move the core's memory.
   */
  resetInCore(core: DirectCore, bytes: number): void {
    const ptr = core.cfgBuffer(Math.max(bytes, 4));
    this.inCore = core;
    this.buf = new Uint8Array(core.memory.buffer, ptr, Math.max(bytes, 4));
    this.dv = new DataView(core.memory.buffer, ptr, this.buf.length);
    this.end = 0;
  }

  /** Ops framed so far. */
  get length(): number { return this.end; }

  /** Appends one op; a service that does not encode is left out and its error returned. */
  push(op: DirectOp): ServiceConfigError | null {
    return op.op === 'put' ? this.frame(OP_PUT, op.slot, op.svc) : this.frame(op.op === 'delete' ? OP_DELETE : OP_CLEAR, op.op === 'delete' ? op.slot : 0, null);
  }

  /**
   * push({ op: 'put', slot, svc }) without the op object; `svc` is read only during the call (a
   * caller may fill one object for every put of a sync).
   */
  put(slot: number, svc: DirectService): ServiceConfigError | null { return this.frame(OP_PUT, slot, svc); }

  /** push({ op: 'delete', slot }). */
  delete(slot: number): void { this.frame(OP_DELETE, slot, null); }

  private frame(op: number, slot: number, svc: DirectService | null): ServiceConfigError | null {
    const need = this.end + frameBytes(svc);
    if (need > this.buf.length) {
      const grown = this.own.length >= need && this.inCore ? this.own : new Uint8Array(Math.max(need, this.own.length * 2));
      grown.set(this.buf.subarray(0, this.end));
      this.inCore = null;
      this.own = this.buf = grown;
      this.dv = new DataView(grown.buffer);
    }
    try {
      this.end = writeOp(this.dv, this.end, op, slot, svc);
    } catch (e) {
      if (e instanceof ServiceConfigError) return e;
      throw e;
    }
    return null;
  }

  /** The framed ops (a view valid until the next push or reset). */
  bytes(): Uint8Array { return this.buf.subarray(0, this.end); }

  /** Runs the framed ops in `core` as runDirectOps does (in place when they were written there). */
  run(core: DirectCore): number[] {
    if (this.inCore !== core) return runDirectOps(core, this.bytes());
    this.inCore = null;
    return this.end === 0 ? [] : applyInPlace(core, this.buf.byteOffset, this.end);
  }
}

/** The direct-table exports of the core. */
export interface DirectCore {
  memory: WebAssembly.Memory;
  cfgBuffer(size: number): number;
  svcApply(len: number): number;
  svcNodePorts(family: number, all: number, loopback: number): void;
  svcNodePortAddr(family: number, a0: number, a1: number, a2: number, a3: number): number;
  serviceCount(): number;
  svcFrontends(): number;
  svcReserve(services: number, frontends: number): number;
  svcAffinity(slot: number, a0: number, a1: number, a2: number, a3: number, now: number): number;
}

/**
 * Runs framed operations (encodeDirectOps) in the core, each atomic on its own. Returns one result
 * per op: the slot of a put, 0 for a delete or clear, or a negative code (DIRECT_ERRORS) for an op
 * the core refused (its service's old entries stay live).
 */
export function runDirectOps(core: DirectCore, framed: Uint8Array): number[] {
  if (framed.length === 0) return [];
  const ptr = core.cfgBuffer(framed.length);
  new Uint8Array(core.memory.buffer).set(framed, ptr);
  return applyInPlace(core, ptr, framed.length);
}

/** svcApply over `len` framed bytes at `ptr`, the config buffer; one result per op. */
function applyInPlace(core: DirectCore, ptr: number, len: number): number[] {
  const n = core.svcApply(len);
  if (n < 0) throw new Error(`direct service ops rejected: ${DIRECT_ERRORS[n] ?? `error ${n}`}`);
  const dv = new DataView(core.memory.buffer);
  const out: number[] = [];
  for (let o = 0; o < len; o += 12 + ((dv.getUint32(ptr + o + 8, true) + 3) & ~3)) out.push(dv.getInt32(ptr + o + 4, true));
  return out;
}

/**
 * Where the table's entry in `slot` sends ClientIP-affinity client `client` back to at `nowMs`
 * ("ip:port", "[ip6]:port"): the destination of the client's fresh stamp, or null. Reads only.
 */
export function affinityDest(core: DirectCore, slot: number, client: string, nowMs: number): string | null {
  const ip = tryParseIP(client);
  if (!ip) return null;
  const d = core.svcAffinity(slot, ...ipWords(ip), nowMs);
  if (d === 0) return null;
  const bytes = new Uint8Array(core.memory.buffer, d, 16).slice(0, ip.length);
  const port = new DataView(core.memory.buffer).getUint16(d + 16, true);
  return joinHostPort(formatIP(bytes), port);
}

/** Where node ports are reached, per family: every local address (loopback or not), or a list. */
export interface NodePortReach { family: 4 | 6; all: boolean; loopback: boolean; addresses: string[] }

export function setNodePortReach(core: DirectCore, reach: NodePortReach): void {
  core.svcNodePorts(reach.family, reach.all ? 1 : 0, reach.loopback ? 1 : 0);
  for (const a of reach.addresses) {
    const ip = tryParseIP(a);
    if (!ip || (ip.length === 4 ? 4 : 6) !== reach.family) throw new Error(`node-port address: not an IPv${reach.family} address: ${a}`);
    if (core.svcNodePortAddr(reach.family, ...ipWords(ip)) !== 0) throw new Error('node-port addresses: 64 at most per node');
  }
}
