// chain-names.ts — kube-proxy's per-service and per-endpoint iptables chain names: the first 16
// characters of base32(sha256(servicePortName + protocol [+ endpoint])) behind a fixed prefix
// (pkg/proxy/iptables/proxier.go: portProtoHash, servicePortPolicyClusterChain,
// servicePortPolicyLocalChainName, serviceFirewallChainName, serviceExternalChainName,
// servicePortEndpointChainName). Carries its own small SHA-256 so it stays synchronous and has no
// platform imports; never used for anything security-relevant. Also the names of a model's
// service ports and endpoints, derived once per model object as kube-proxy derives them once.
import type { EndpointInfo, ServicePortInfo } from './model.js';

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

// Work buffers reused by every call: chain names are hashed by the ten thousand per sync, and a
// fresh message block and schedule per hash were most of the sync's young garbage.
const W = new Uint32Array(64);
const H = new Uint32Array(8);
let block = new Uint8Array(256);
let blockView = new DataView(block.buffer);

/** SHA-256 (FIPS 180-4) of the first `length` bytes of `data`. */
export function sha256(data: Uint8Array, length = data.length): Uint8Array {
  room(length);
  block.set(data.subarray(0, length));
  digest(length);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const x = H[i]!;
    out[4 * i] = x >>> 24; out[4 * i + 1] = x >>> 16; out[4 * i + 2] = x >>> 8; out[4 * i + 3] = x;
  }
  return out;
}

/** Makes the message block hold `length` bytes and their padding. */
function room(length: number): void {
  if (length + 72 > block.length) {
    block = new Uint8Array(2 * (length + 72));
    blockView = new DataView(block.buffer);
  }
}

/** SHA-256 of the message already in the first `length` bytes of `block`, left in H (no result
 *  array: see hash16). */
function digest(length: number): void {
  H[0] = 0x6a09e667; H[1] = 0xbb67ae85; H[2] = 0x3c6ef372; H[3] = 0xa54ff53a;
  H[4] = 0x510e527f; H[5] = 0x9b05688c; H[6] = 0x1f83d9ab; H[7] = 0x5be0cd19;
  const total = Math.ceil((length + 9) / 64) * 64;
  const msg = block, view = blockView, w = W, h = H;
  msg.fill(0, length, total);
  msg[length] = 0x80;
  const bitLen = length * 8;
  view.setUint32(total - 8, Math.floor(bitLen / 0x100000000));
  view.setUint32(total - 4, bitLen >>> 0);
  for (let off = 0; off < total; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15]!;
      const b = w[i - 2]!;
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) >>> 0;
    }
    let a = h[0]!, b = h[1]!, c = h[2]!, d = h[3]!, e = h[4]!, f = h[5]!, g = h[6]!, hh = h[7]!;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[i]! + w[i]!) >>> 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0;
      d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] = (h[0]! + a) >>> 0; h[1] = (h[1]! + b) >>> 0; h[2] = (h[2]! + c) >>> 0; h[3] = (h[3]! + d) >>> 0;
    h[4] = (h[4]! + e) >>> 0; h[5] = (h[5]! + f) >>> 0; h[6] = (h[6]! + g) >>> 0; h[7] = (h[7]! + hh) >>> 0;
  }
}

const B32_CODES = Uint8Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', (c) => c.charCodeAt(0));

// TextEncoder exists in every runtime we target (Node, browsers, Deno, Bun).
const encoder = new TextEncoder();

/** RFC 4648 base32 (Go's base32.StdEncoding) of sha256(utf8(s)), cut to 16 characters: the
 *  digest's first 80 bits, 5 per character, read straight from H into one string (60,000 names
 *  per sync; no digest or base32 text made). The text is encoded straight into the message block. */
function hash16(s: string): string {
  room(s.length * 3);
  digest(ascii(s) ? s.length : encoder.encodeInto(s, block).written);
  const a = H[0]!, b = H[1]!, c = H[2]! >>> 16;
  const t = B32_CODES;
  return String.fromCharCode(
    t[a >>> 27]!, t[(a >>> 22) & 31]!, t[(a >>> 17) & 31]!, t[(a >>> 12) & 31]!, t[(a >>> 7) & 31]!, t[(a >>> 2) & 31]!,
    t[((a & 3) << 3) | (b >>> 29)]!, t[(b >>> 24) & 31]!, t[(b >>> 19) & 31]!, t[(b >>> 14) & 31]!, t[(b >>> 9) & 31]!,
    t[(b >>> 4) & 31]!, t[((b & 15) << 1) | (c >>> 15)]!, t[(c >>> 10) & 31]!, t[(c >>> 5) & 31]!, t[c & 31]!,
  );
}

/** Copies `s` into the message block when it is ASCII (names and addresses nearly always are: a
 *  loop is cheaper than a call into the encoder); false, with the block's content undefined,
 *  otherwise. */
function ascii(s: string): boolean {
  const msg = block;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) return false;
    msg[i] = c;
  }
  return true;
}

// No memo of names across syncs: kube-proxy derives them once per service port and endpoint
// object (newServiceInfo, newEndpointInfo), and so does the renderer (its per-object caches). A
// memo keyed by the hashed text missed on every name of a first sync, and its map cost about as
// much as the hashing it saved on later ones.

/** portProtoHash: 16 base32 characters of sha256(servicePortName + protocol). */
export function portProtoHash(servicePortName: string, protocol: string): string {
  return hash16(servicePortName + protocol);
}

// Protocol arguments are lower case ("tcp"), as proxier.go passes strings.ToLower(protocol).
export const servicePortPolicyClusterChain = (spn: string, proto: string): string => `KUBE-SVC-${portProtoHash(spn, proto)}`;
export const servicePortPolicyLocalChainName = (spn: string, proto: string): string => `KUBE-SVL-${portProtoHash(spn, proto)}`;
export const serviceFirewallChainName = (spn: string, proto: string): string => `KUBE-FW-${portProtoHash(spn, proto)}`;
export const serviceExternalChainName = (spn: string, proto: string): string => `KUBE-EXT-${portProtoHash(spn, proto)}`;

/** servicePortEndpointChainName: the hash also covers the endpoint string ("ip:port", "[ip6]:port"). */
export function servicePortEndpointChainName(spn: string, proto: string, endpoint: string): string {
  return `KUBE-SEP-${hash16(spn + proto + endpoint)}`;
}

/**
 * nftables mode's hashAndTruncate (pkg/proxy/nftables/proxier.go): the first 8 characters of
 * base32(sha256(name)), "-", the name; cut to 240 characters (knftables.NameLengthMax less the
 * longest prefix), the last three "...".
 */
export function nftNameBase(name: string): string {
  const n = `${hash16(name).slice(0, 8)}-${name}`;
  return n.length > 240 ? `${n.slice(0, 237)}...` : n;
}

const SERVICE_CHAIN_PREFIXES = ['KUBE-SVC-', 'KUBE-SVL-', 'KUBE-SEP-', 'KUBE-FW-', 'KUBE-EXT-'];

/** isServiceChainName: chains kube-proxy owns per service and may delete when stale. */
export function isServiceChainName(chain: string): boolean {
  return SERVICE_CHAIN_PREFIXES.some((p) => chain.startsWith(p));
}

// kube-proxy derives a service port's chain names once, in newServiceInfo, and an endpoint's in
// its endpointInfo; the renderer keeps them the same way, per model object, so a partial sync at
// 20,000 Services does not hash every Service again to write KUBE-SERVICES.
export interface PortChainNames { name: string; proto: string; protocol: string; svc: string; svl: string; ext: string; fw: string }
const portNames = new WeakMap<ServicePortInfo, PortChainNames>();
/** A service port's KUBE-SVC/SVL/EXT/FW chain names (and lower-case protocol), kept per model object. */
export function portChainNames(sp: ServicePortInfo): PortChainNames {
  let n = portNames.get(sp);
  if (n === undefined || n.name !== sp.name || n.proto !== sp.protocol) {
    const protocol = sp.protocol.toLowerCase();
    const h = portProtoHash(sp.name, protocol);
    n = { name: sp.name, proto: sp.protocol, protocol, svc: `KUBE-SVC-${h}`, svl: `KUBE-SVL-${h}`, ext: `KUBE-EXT-${h}`, fw: `KUBE-FW-${h}` };
    portNames.set(sp, n);
  }
  return n;
}
const sepNames = new WeakMap<EndpointInfo, { name: string; protocol: string; endpoint: string; chain: string }>();
/** An endpoint's KUBE-SEP chain name under service port `spn`, kept per model object. */
export function endpointChainName(spn: string, protocol: string, ep: EndpointInfo): string {
  let c = sepNames.get(ep);
  if (c === undefined || c.name !== spn || c.protocol !== protocol || c.endpoint !== ep.endpoint) {
    c = { name: spn, protocol, endpoint: ep.endpoint, chain: servicePortEndpointChainName(spn, protocol, ep.endpoint) };
    sepNames.set(ep, c);
  }
  return c.chain;
}
