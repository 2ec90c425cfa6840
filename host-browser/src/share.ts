// share.ts — the playground's whole state (objects, mode, scheduler, packet, virtual clock) as a
// compact string for the URL hash and as a file: msgpack, deflated (CompressionStream), one
// leading format byte, base64url in the URL. Decoding checks every field and refuses anything
// else with a ShareError, so a mangled link never half-loads. Never touches the DOM or the core.
import { Packr } from 'msgpackr';
import { IPVS_SCHEDULERS, presetById, type Mode, type PacketSpec, type Proto } from './presets.js';
import type { ObjectSource } from './engine/playground.js';
import { TOO_DEEP, valueTooDeep } from '../../host-node/kube/yaml-depth.js';

export interface ShareState {
  objects: ObjectSource;
  mode: Mode;
  scheduler: string;
  packet: PacketSpec;
  clockMs: number;
}

export class ShareError extends Error {}

/** Format byte: 1 = msgpack deflated (RFC 1950), 2 = msgpack as is (no CompressionStream). */
const DEFLATED = 1;
const PLAIN = 2;
const VERSION = 1;

const packr = new Packr({ useRecords: false });

/**
 * A state inflates to at most this much. A shared link is someone else's bytes: a few hundred
 * kilobytes of deflate can hold gigabytes of zeros, which would take the page down. Real states
 * (presets with their edits, or an editor's YAML) are far smaller.
 */
export const MAX_STATE_BYTES = 64 << 20;

/** `bytes` through `stream`, refused past `limit` bytes of output (the stream is cancelled). */
async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream, limit = Infinity): Promise<Uint8Array> {
  const reader = new Blob([bytes as BlobPart]).stream().pipeThrough(stream).getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    size += r.value.length;
    if (size > limit) {
      await reader.cancel();
      throw new ShareError(`the shared state inflates to more than ${limit >> 20} MiB: refused`);
    }
    parts.push(r.value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function encodeState(s: ShareState): Promise<Uint8Array> {
  const body = packr.pack({ v: VERSION, o: s.objects, m: s.mode, s: s.scheduler, p: s.packet, c: s.clockMs }) as Uint8Array;
  const canDeflate = typeof CompressionStream === 'function';
  const payload = canDeflate ? await pipe(body, new CompressionStream('deflate')) : body;
  const out = new Uint8Array(payload.length + 1);
  out[0] = canDeflate ? DEFLATED : PLAIN;
  out.set(payload, 1);
  return out;
}

export async function decodeState(bytes: Uint8Array): Promise<ShareState> {
  if (bytes.length < 2 || (bytes[0] !== DEFLATED && bytes[0] !== PLAIN)) throw new ShareError('not a svcplane playground state');
  let body: Uint8Array;
  try {
    body = bytes[0] === DEFLATED ? await pipe(bytes.subarray(1), new DecompressionStream('deflate'), MAX_STATE_BYTES) : bytes.subarray(1);
  } catch (e) {
    if (e instanceof ShareError) throw e;
    throw new ShareError('the shared state is damaged (it does not inflate)');
  }
  let raw: unknown;
  try {
    raw = packr.unpack(body);
  } catch {
    throw new ShareError('the shared state is damaged (not msgpack)');
  }
  return validate(raw);
}

const MODES: readonly Mode[] = ['iptables', 'ipvs', 'direct'];
const PROTOS: readonly Proto[] = ['tcp', 'udp', 'sctp'];

function validate(raw: unknown): ShareState {
  const r = raw as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null) throw new ShareError('the shared state is not an object');
  if (r.v !== VERSION) throw new ShareError(`shared state version ${String(r.v)} is not supported (expected ${VERSION})`);
  const o = r.o as Record<string, unknown> | null;
  let objects: ObjectSource;
  if (o && typeof o.yaml === 'string') objects = { yaml: o.yaml };
  else if (o && typeof o.preset === 'string') {
    if (!presetById(o.preset)) throw new ShareError(`shared state: unknown preset ${JSON.stringify(o.preset)}`);
    // The edits are printed as YAML for the editor, a recursion per level.
    if (valueTooDeep(o.edits)) throw new ShareError(`shared state: edits ${TOO_DEEP}`);
    objects = Array.isArray(o.edits) && o.edits.length ? { preset: o.preset, edits: o.edits } : { preset: o.preset };
  }
  else throw new ShareError('shared state: objects must be { yaml } or { preset }');
  if (!MODES.includes(r.m as Mode)) throw new ShareError(`shared state: unknown mode ${JSON.stringify(r.m)}`);
  // Every mode carries one: the page's scheduler menu shows it, and ipvs mode runs it.
  if (!(IPVS_SCHEDULERS as readonly unknown[]).includes(r.s)) throw new ShareError(`shared state: unknown IPVS scheduler ${JSON.stringify(r.s)}`);
  if (typeof r.c !== 'number' || !Number.isFinite(r.c) || r.c < 0) throw new ShareError('shared state: clock must be a number ≥ 0');
  return { objects, mode: r.m as Mode, scheduler: r.s as string, packet: validPacket(r.p), clockMs: r.c };
}

function validPacket(raw: unknown): PacketSpec {
  const p = raw as Record<string, unknown> | null;
  if (typeof p !== 'object' || p === null) throw new ShareError('shared state: packet missing');
  const str = (k: string) => {
    if (typeof p[k] !== 'string') throw new ShareError(`shared state: packet.${k} must be a string`);
    return p[k] as string;
  };
  const port = (k: string) => {
    const v = p[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) throw new ShareError(`shared state: packet.${k} must be a port`);
    return v;
  };
  const from = str('from'), to = str('to'), proto = str('proto');
  if (!['pod', 'node', 'outside'].includes(from)) throw new ShareError(`shared state: packet.from ${JSON.stringify(from)}`);
  if (!['service', 'vip', 'nodeport', 'name'].includes(to)) throw new ShareError(`shared state: packet.to ${JSON.stringify(to)}`);
  if (!PROTOS.includes(proto as Proto)) throw new ShareError(`shared state: packet.proto ${JSON.stringify(proto)}`);
  return {
    from: from as PacketSpec['from'], src: str('src'), to: to as PacketSpec['to'], service: str('service'),
    dst: str('dst'), dport: port('dport'), proto: proto as Proto, sport: port('sport'),
  };
}

export function toBase64url(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new ShareError('the shared link is damaged (not base64url)');
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
  let bin: string;
  try {
    bin = atob(b64);
  } catch {
    throw new ShareError('the shared link is damaged (not base64url)');
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The URL hash for a state: "#s=<base64url>". */
export async function stateToHash(s: ShareState): Promise<string> {
  return `#s=${toBase64url(await encodeState(s))}`;
}

/** The state in a URL hash, or null when the hash holds none. */
export async function stateFromHash(hash: string): Promise<ShareState | null> {
  const m = /^#?s=(.*)$/.exec(hash);
  if (!m) return null;
  return decodeState(fromBase64url(m[1]!));
}
