// ABI.md against the real core: (1) the doc names every function the release module exports, and
// exports every function the doc names; (2) a host written only from ABI.md — plain code below that
// imports nothing from the project but the .wasm bytes — loads a service table built by hand, pushes
// hand-built packets with hand-computed checksums through processBatch, and reads the verdicts back;
// its answers must equal what host-node's Dataplane gives for the same config, packets, seed and time.
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Dataplane } from '../../host-node/core/dataplane.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const doc = readFileSync(join(root, 'ABI.md'), 'utf8');

/** The embedded release build (build/core-wasm.js holds it as one base64 string). */
function coreBytes(): Uint8Array {
  const js = readFileSync(join(root, 'build', 'core-wasm.js'), 'utf8');
  const m = /export default "([A-Za-z0-9+/=]+)"/.exec(js);
  if (!m) throw new Error('build/core-wasm.js: no embedded module');
  return new Uint8Array(Buffer.from(m[1]!, 'base64'));
}

/** Export names ABI.md documents: every `name(…)` in the first cell of a table row that opens with one. */
function documentedFunctions(): Set<string> {
  const names = new Set<string>();
  for (const row of doc.matchAll(/^\| (`[A-Za-z_][A-Za-z0-9_]*\([^|]*)\|/gm)) {
    for (const m of row[1]!.matchAll(/`([A-Za-z_][A-Za-z0-9_]*)\(/g)) names.add(m[1]!);
  }
  return names;
}

describe('ABI.md lists exactly the exports', () => {
  const module = new WebAssembly.Module(coreBytes() as BufferSource);
  const exported = WebAssembly.Module.exports(module);
  const functions = exported.filter((e) => e.kind === 'function').map((e) => e.name);
  const documented = documentedFunctions();

  it('documents every exported function', () => {
    expect(functions.length).toBeGreaterThan(100);
    expect(functions.filter((n) => !documented.has(n))).toEqual([]);
  });

  it('lists no function the module lacks', () => {
    expect([...documented].filter((n) => !functions.includes(n))).toEqual([]);
  });

  it('documents the non-function exports and the one import', () => {
    for (const e of exported.filter((x) => x.kind !== 'function')) expect(doc).toContain(`\`${e.name}\``);
    for (const i of WebAssembly.Module.imports(module)) expect(doc).toContain(`\`${i.module}.${i.name}\``);
  });

  it('states the version the module reports', () => {
    const inst = new WebAssembly.Instance(module, { env: { abort() { throw new Error('abort'); } } });
    const version = (inst.exports.abiVersion as () => number)();
    expect(doc).toMatch(new RegExp(`^ABI version: \\*\\*${version}\\*\\*`, 'm'));
  });
});

// ───────────── A host from ABI.md alone ─────────────

interface Core {
  memory: WebAssembly.Memory;
  [name: string]: any;
}

function instantiate(): Core {
  const module = new WebAssembly.Module(coreBytes() as BufferSource);
  const inst = new WebAssembly.Instance(module, {
    env: { abort(_m: number, _f: number, line: number, col: number) { throw new Error(`core abort ${line}:${col}`); } },
  });
  return inst.exports as unknown as Core;
}

/** Address bytes → the four u32 words (little-endian loads of the bytes; IPv4: word 0 only). */
function words(ip: number[]): number[] {
  const w = [0, 0, 0, 0];
  for (let k = 0; k < ip.length / 4; k++) w[k] = (ip[4 * k]! | (ip[4 * k + 1]! << 8) | (ip[4 * k + 2]! << 16) | (ip[4 * k + 3]! << 24)) >>> 0;
  return w;
}
const v4 = (s: string) => s.split('.').map(Number);

interface Svc { vip: string; port: number; proto: number; dests: Array<[string, number]>; rejectWhenEmpty?: boolean }

/** The direct service table blob, byte for byte as ABI.md lays it out. */
function serviceBlob(svcs: Svc[]): Uint8Array {
  const nDest = svcs.reduce((n, s) => n + s.dests.length, 0);
  const buf = new Uint8Array(16 + 48 * svcs.length + 24 * nDest);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, 0x31435653, true);
  dv.setUint32(4, 1, true);
  dv.setUint32(8, svcs.length, true);
  dv.setUint32(12, nDest, true);
  let d = 0;
  svcs.forEach((s, i) => {
    const o = 16 + 48 * i;
    dv.setUint8(o, 4);
    dv.setUint8(o + 1, s.proto);
    dv.setUint16(o + 2, s.rejectWhenEmpty ? 2 : 0, true);
    dv.setUint16(o + 4, s.port, true);
    words(v4(s.vip)).forEach((w, k) => dv.setUint32(o + 8 + 4 * k, w, true));
    dv.setUint32(o + 24, d, true);
    dv.setUint32(o + 28, s.dests.length, true);
    dv.setUint32(o + 36, 100 + i, true); // service id, echoed in the descriptor's aux
    for (const [ip, port] of s.dests) {
      const p = 16 + 48 * svcs.length + 24 * d;
      words(v4(ip)).forEach((w, k) => dv.setUint32(p + 4 * k, w, true));
      dv.setUint16(p + 16, port, true);
      dv.setUint16(p + 18, 1, true);
      d++;
    }
  });
  return buf;
}

// Internet checksum (RFC 1071).
function sum16(b: Uint8Array, from: number, to: number, acc = 0): number {
  for (let i = from; i < to; i += 2) acc += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
  return acc;
}
function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}
function l4Sum(p: Uint8Array): number {
  const ihl = (p[0]! & 15) * 4;
  const total = (p[2]! << 8) | p[3]!;
  let acc = sum16(p, 12, 20) + p[9]! + (total - ihl);
  return fold(sum16(p, ihl, total, acc));
}
function checksumsValid(p: Uint8Array): boolean {
  const ihl = (p[0]! & 15) * 4;
  return fold(sum16(p, 0, ihl)) === 0xffff && l4Sum(p) === 0xffff;
}

/** An IPv4 packet with a TCP (flags) or UDP (payload) header and correct checksums. */
function ipv4(src: string, dst: string, proto: 6 | 17, sport: number, dport: number, opts: { flags?: number; payload?: number[] } = {}): Uint8Array {
  const payload = opts.payload ?? [];
  const l4 = proto === 6 ? 20 : 8;
  const total = 20 + l4 + payload.length;
  const p = new Uint8Array(total);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, total);
  dv.setUint16(4, 0x1234);
  dv.setUint16(6, 0x4000);
  p[8] = 64;
  p[9] = proto;
  p.set(v4(src), 12);
  p.set(v4(dst), 16);
  dv.setUint16(10, ~fold(sum16(p, 0, 20)) & 0xffff);
  dv.setUint16(20, sport);
  dv.setUint16(22, dport);
  if (proto === 6) {
    dv.setUint32(24, 0x01020304);
    p[32] = 5 << 4;
    p[33] = opts.flags ?? 0x02;
    dv.setUint16(34, 64240);
    dv.setUint16(36, ~l4Sum(p) & 0xffff);
  } else {
    dv.setUint16(24, 8 + payload.length);
    p.set(payload, 28);
    dv.setUint16(26, ~l4Sum(p) & 0xffff || 0xffff);
  }
  return p;
}

interface Out { verdict: number; reason: number; ctstate: number; ct: number; aux: number; bytes?: Uint8Array }

/** Runs one batch through the arena as ABI.md describes; returns each descriptor's outputs. */
function runBatch(core: Core, packets: Uint8Array[], nowMs: number): Out[] {
  const desc = core.ioDescPtr() >>> 0, data = core.ioDataPtr() >>> 0;
  const slot = 2048;
  let dv = new DataView(core.memory.buffer);
  let u8 = new Uint8Array(core.memory.buffer);
  packets.forEach((p, i) => {
    u8.set(p, data + i * slot);
    const d = desc + 32 * i;
    dv.setUint32(d + 0, i * slot, true);
    dv.setUint32(d + 4, p.length, true);
    dv.setUint32(d + 8, slot, true);
    dv.setUint32(d + 12, 0, true);
  });
  expect(core.processBatch(packets.length, nowMs) >>> 0).toBe(packets.length);
  dv = new DataView(core.memory.buffer);
  u8 = new Uint8Array(core.memory.buffer);
  return packets.map((_, i) => {
    const d = desc + 32 * i;
    const o: Out = {
      verdict: dv.getUint8(d + 16), ctstate: dv.getUint8(d + 17), reason: dv.getUint16(d + 18, true),
      ct: dv.getUint32(d + 24, true), aux: dv.getUint32(d + 28, true),
    };
    if (o.verdict !== 2) {
      const off = data + dv.getUint32(d, true);
      o.bytes = u8.slice(off, off + dv.getUint32(d + 4, true));
    }
    return o;
  });
}

const SEED = 0x1234_5678_9abcn;
const SERVICES: Svc[] = [
  { vip: '10.96.0.80', port: 80, proto: 6, dests: [['10.244.1.11', 8080]] },
  { vip: '10.96.0.10', port: 53, proto: 17, dests: [['10.244.1.21', 5353], ['10.244.2.22', 5353], ['10.244.3.23', 5353]] },
  { vip: '10.96.0.99', port: 99, proto: 6, dests: [], rejectWhenEmpty: true },
];

function bootDocHost(): Core {
  const core = instantiate();
  expect(core.abiVersion()).toBe(1);
  expect(core.init(10, 6, Number(SEED & 0xffffffffn), Number(SEED >> 32n))).toBe(0);
  expect(core.init(10, 6, 0, 0)).toBe(-2);
  core.nodeClear();
  expect(core.nodeLocal(4, ...words(v4('192.168.49.2')))).toBe(0);
  core.nodeMasquerade(4, ...words(v4('192.168.49.2')));
  core.nodePodCIDR(4, ...words(v4('10.244.0.0')), 16);
  const blob = serviceBlob(SERVICES);
  const ptr = core.cfgBuffer(blob.length) >>> 0;
  new Uint8Array(core.memory.buffer).set(blob, ptr); // a fresh view: cfgBuffer may grow memory
  expect(core.loadServices(blob.length)).toBe(SERVICES.length);
  expect(core.serviceCount()).toBe(SERVICES.length);
  return core;
}

describe('a host written from ABI.md alone', () => {
  let core: Core;
  beforeAll(() => { core = bootDocHost(); });

  it('rejects a blob with a bad magic and keeps the live table', () => {
    const blob = serviceBlob(SERVICES);
    blob[0] ^= 0xff;
    const ptr = core.cfgBuffer(blob.length) >>> 0;
    new Uint8Array(core.memory.buffer).set(blob, ptr);
    expect(core.loadServices(blob.length)).toBe(-1);
    expect(core.serviceCount()).toBe(SERVICES.length);
  });

  it('forwards a TCP SYN to the endpoint, destination rewritten, checksums valid', () => {
    const syn = ipv4('10.244.1.5', '10.96.0.80', 6, 40000, 80, { flags: 0x02 });
    expect(checksumsValid(syn)).toBe(true);
    const [r] = runBatch(core, [syn], 5000);
    expect(r!.verdict).toBe(1);           // FORWARD
    expect(r!.reason).toBe(0);
    expect(r!.ctstate).toBe(8);           // NEW
    expect(r!.ct).not.toBe(0xffffffff);
    expect(r!.aux).toBe(100);             // service id from the blob
    const out = r!.bytes!;
    expect(out.length).toBe(syn.length);
    expect([...out.slice(16, 20)]).toEqual(v4('10.244.1.11'));
    expect((out[22]! << 8) | out[23]!).toBe(8080);
    expect([...out.slice(12, 16)]).toEqual(v4('10.244.1.5')); // from a pod: no masquerade
    expect((out[20]! << 8) | out[21]!).toBe(40000);
    expect(checksumsValid(out)).toBe(true);
    expect(core.conntrackCount()).toBe(1);

    // The counter block: verdict FORWARD is u64 #1, packets at #(verdicts + reasons).
    const stats = core.statsPtr() >>> 0;
    const dv = new DataView(core.memory.buffer);
    expect(dv.getBigUint64(stats + 8 * 1, true)).toBe(1n);
    expect(dv.getBigUint64(stats + 8 * (core.verdictCount() + core.reasonCount()), true)).toBe(1n);
  });
});

describe('the ABI.md host agrees with Dataplane', () => {
  const packets = () => [
    ipv4('10.244.1.5', '10.96.0.80', 6, 40001, 80),                           // pod → service
    ipv4('172.16.0.9', '10.96.0.80', 6, 40002, 80),                           // off-pod: masquerade
    ipv4('10.244.1.5', '10.96.0.10', 17, 5353, 53, { payload: [1, 2, 3, 4, 5] }),
    ipv4('10.244.1.6', '10.96.0.10', 17, 5354, 53, { payload: [9] }),
    ipv4('10.244.1.5', '10.96.0.99', 6, 40003, 99),                           // no endpoints: REJECT
    ipv4('10.244.1.5', '10.1.2.3', 6, 40004, 443),                            // not a service
    ipv4('10.244.1.5', '10.96.0.80', 6, 40005, 80, { flags: 0x12 }),          // SYN/ACK opens nothing
    ipv4('10.244.1.5', '10.96.0.80', 6, 40006, 80).slice(0, 30),              // truncated
  ];
  const NAMES = ['PASS', 'FORWARD', 'DROP', 'REPLY'];

  it('gives the same verdicts, reasons and bytes', async () => {
    const mine = bootDocHost();
    const dp = await Dataplane.create({
      nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: SEED, conntrackCapacity: 1024, conntrackCapacity6: 64,
    });
    dp.setServices(SERVICES.map((s) => ({
      vip: s.vip, port: s.port, protocol: s.proto === 6 ? 'TCP' as const : 'UDP' as const,
      endpoints: s.dests.map(([ip, port]) => `${ip}:${port}`), whenEmpty: s.rejectWhenEmpty ? 'reject' as const : 'drop' as const,
    })));
    const a = runBatch(mine, packets(), 7000);
    const b = dp.processBatch(packets(), 7000);
    expect(a.map((r) => NAMES[r.verdict])).toEqual(b.map((r) => r.verdict));
    expect(a.map((r) => NAMES[r.verdict])).toEqual(['FORWARD', 'FORWARD', 'FORWARD', 'FORWARD', 'REPLY', 'PASS', 'DROP', 'DROP']);
    expect(a.map((r) => r.reason)).toEqual([0, 0, 0, 0, 8, 0, 7, 1]);
    for (let i = 0; i < a.length; i++) {
      expect(a[i]!.bytes ? Buffer.from(a[i]!.bytes!).toString('hex') : undefined).toBe(b[i]!.packet ? Buffer.from(b[i]!.packet!).toString('hex') : undefined);
      if (a[i]!.bytes && a[i]!.verdict === 1) expect(checksumsValid(a[i]!.bytes!)).toBe(true);
    }
    // The off-pod client was masqueraded to the node address.
    expect([...a[1]!.bytes!.slice(12, 16)]).toEqual(v4('192.168.49.2'));
    expect(mine.conntrackCount()).toBe(dp.core.conntrackCount());
  });
});
