// ABI.md §13 is enough to load a compiled config: `PlainHost` below is written from ABI.md alone (it
// imports nothing from the project; only the .wasm bytes are read from the build). It checks and
// replays a .svp written by `svcplane compile`-style recording (kube-proxy iptables rules from
// manifests, and a direct service table), drives processBatch through the descriptors of §5, and must
// get the same verdicts, reasons and bytes as Dataplane.load of the same file.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Dataplane } from '../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../host-node/core/packet.js';

// ---- the plain host: ABI.md only ----

const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (b: Uint8Array) => {
  let c = 0xffffffff;
  for (const x of b) c = CRC[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};

// §13 op table: [export, argc, buffer kind, pointer argument or -1]
const OPS: Record<number, [string, number, number, number]> = {
  1: ['init', 4, 0, -1], 2: ['nodeClear', 0, 0, -1], 3: ['nodeLocal', 5, 0, -1], 4: ['nodePodCIDR', 6, 0, -1],
  5: ['nodeServiceCIDR', 6, 0, -1], 6: ['nodeMasquerade', 5, 0, -1], 7: ['nodeDnsAddress', 6, 0, -1],
  8: ['loadServices', 1, 1, -1], 9: ['conntrackTimeout', 2, 0, -1], 10: ['iptStageChain', 3, 1, 1],
  11: ['iptStageDelete', 1, 0, -1], 12: ['iptSetPolicy', 2, 0, -1], 13: ['iptCommit', 0, 0, -1], 14: ['iptAbort', 0, 0, -1],
  15: ['iptSetIfName', 3, 1, 1], 16: ['iptModeSet', 1, 0, -1], 17: ['ipsetCreate', 9, 0, -1], 18: ['ipsetDestroy', 1, 0, -1],
  19: ['ipsetFlush', 1, 0, -1], 20: ['ipsetSwap', 2, 0, -1], 21: ['ipsetRename', 2, 0, -1], 22: ['ipsetAdd', 3, 2, -1],
  23: ['ipsetDel', 3, 2, -1], 24: ['ipsetBegin', 0, 0, -1], 25: ['ipsetCommit', 0, 0, -1], 26: ['ipsetAbort', 0, 0, -1],
  27: ['ipvsInit', 4, 0, -1], 28: ['ipvsAddService', 13, 0, -1], 29: ['ipvsEditService', 6, 0, -1], 30: ['ipvsDeleteService', 1, 0, -1],
  31: ['ipvsFlush', 0, 0, -1], 32: ['ipvsAddDest', 11, 0, -1], 33: ['ipvsEditDest', 6, 0, -1], 34: ['ipvsDeleteDest', 2, 0, -1],
  35: ['ipvsSetTimeouts', 3, 0, -1], 36: ['ipvsSetSysctl', 2, 0, -1], 37: ['ipvsSetTunnelSource', 5, 0, -1], 38: ['dnsLoad', 1, 3, -1], 44: ['iptStagePatch', 5, 1, 1],
};

type Fn = (...a: number[]) => number;

class PlainHost {
  private constructor(private readonly x: Record<string, Fn> & { memory: WebAssembly.Memory }) {}

  static async load(wasm: Uint8Array, svp: Uint8Array): Promise<PlainHost> {
    const dv = new DataView(svp.buffer, svp.byteOffset, svp.byteLength);
    const bad = (why: string) => new Error(`svp: ${why}`);
    if (svp.length < 32 || dv.getUint32(0, true) !== 0x31505653) throw bad('magic');
    if (dv.getUint16(4, true) !== 1) throw bad('format version');
    const body = dv.getUint32(12, true);
    if (svp.length !== 32 + body) throw bad('length');
    if (crc32(svp.subarray(32)) !== dv.getUint32(16, true)) throw bad('crc');
    const ops: Array<{ id: number; args: number[]; blob: Uint8Array; result: number }> = [];
    let at = 32 + ((dv.getUint32(20, true) + 7) & ~7);
    for (let k = dv.getUint32(8, true); k > 0; k--) {
      const id = dv.getUint16(at, true), argc = dv.getUint8(at + 2), kind = dv.getUint8(at + 3), len = dv.getUint32(at + 4, true);
      const spec = OPS[id];
      if (!spec || spec[1] !== argc || spec[2] !== kind) throw bad(`op ${id}`);
      const args: number[] = [];
      for (let i = 0; i < argc; i++) args.push(dv.getFloat64(at + 16 + 8 * i, true));
      const start = at + 16 + 8 * argc;
      ops.push({ id, args, blob: svp.subarray(start, start + len), result: dv.getInt32(at + 8, true) });
      at = start + ((len + 7) & ~7);
    }
    if (at !== svp.length) throw bad('ops do not tile the body');
    const { instance } = await WebAssembly.instantiate(wasm, { env: { abort() { throw new Error('core abort'); } } });
    const x = instance.exports as unknown as Record<string, Fn> & { memory: WebAssembly.Memory };
    if (x.abiVersion!() !== dv.getUint16(6, true)) throw bad('ABI version');
    for (const o of ops) {
      const [name, , kind, ptrArg] = OPS[o.id]!;
      const args = o.args.map((a) => Number(BigInt.asUintN(32, BigInt(Math.trunc(a)))));
      if (kind !== 0) {
        const p = (kind === 1 ? x.cfgBuffer!(o.blob.length) : kind === 3 ? x.dnsBuffer!(o.blob.length) : x.ipsetElem!()) >>> 0;
        new Uint8Array(x.memory.buffer).set(o.blob, p);
        if (ptrArg >= 0) args[ptrArg] = p;
      }
      if (name === 'ipsetAdd' || name === 'ipsetDel') args[2] = o.args[2]!;   // nowMs stays an f64
      const r = x[name]!(...args);
      if (((r ?? 0) | 0) !== o.result) throw bad(`${name} returned ${r}, recorded ${o.result}`);
    }
    return new PlainHost(x);
  }

  /** §5: packets into the data area, one 32-byte descriptor each, processBatch, read the verdicts. */
  process(packets: Uint8Array[], nowMs: number): Array<{ verdict: number; reason: number; out: string | null }> {
    const x = this.x;
    const desc = x.ioDescPtr!() >>> 0, data = x.ioDataPtr!() >>> 0;
    let mem = new DataView(x.memory.buffer);
    let off = 0;
    packets.forEach((p, k) => {
      const cap = Math.max(p.length, 1344);
      new Uint8Array(x.memory.buffer).set(p, data + off);
      mem.setUint32(desc + 32 * k, off, true);
      mem.setUint32(desc + 32 * k + 4, p.length, true);
      mem.setUint32(desc + 32 * k + 8, cap, true);
      mem.setUint32(desc + 32 * k + 12, 0, true);
      off += (cap + 7) & ~7;
    });
    x.processBatch!(packets.length, nowMs);
    mem = new DataView(x.memory.buffer);
    return packets.map((_, k) => {
      const d = desc + 32 * k;
      const verdict = mem.getUint8(d + 16);
      const o = data + mem.getUint32(d, true), len = mem.getUint32(d + 4, true);
      return { verdict, reason: mem.getUint16(d + 18, true), out: verdict === 2 ? null : Buffer.from(new Uint8Array(x.memory.buffer, o, len)).toString('hex') };
    });
  }
}

// ---- the check ----

function coreBytes(): Uint8Array {
  const js = readFileSync(join(import.meta.dirname, '../../build/core-wasm.js'), 'utf8');
  return new Uint8Array(Buffer.from(/export default "([A-Za-z0-9+/=]+)"/.exec(js)![1]!, 'base64'));
}

const VERDICTS = ['PASS', 'FORWARD', 'DROP', 'REPLY'];

async function agree(svp: Uint8Array) {
  const plain = await PlainHost.load(coreBytes(), svp);
  const dp = await Dataplane.load(svp);
  let forwards = 0;
  for (let i = 0; i < 24; i++) {
    const src = i % 4 === 3 ? `203.0.113.${i}` : `10.244.${i % 3}.${i + 2}`;
    const syn = buildPacket({ src, dst: i % 5 === 4 ? '10.96.0.53' : '10.96.0.80', proto: i % 5 === 4 ? 'udp' : 'tcp', sport: 40000 + i, dport: i % 5 === 4 ? 53 : 80, flags: 'S', payload: i % 5 === 4 ? 'q' : '' });
    const ref = dp.processBatch([syn], 1000 + i)[0]!;
    const got = plain.process([syn], 1000 + i)[0]!;
    expect([VERDICTS[got.verdict], got.out]).toEqual([ref.verdict, ref.packet ? Buffer.from(ref.packet).toString('hex') : null]);
    if (ref.verdict === 'FORWARD') {
      forwards++;
      const o = decodePacket(ref.packet!);
      const answer = buildPacket({ src: o.dst, dst: o.src, proto: o.proto === 6 ? 'tcp' : 'udp', sport: o.dport, dport: o.sport, flags: 'SA', ack: 1, payload: o.proto === 17 ? 'a' : '' });
      const r2 = dp.processBatch([answer], 1100 + i)[0]!;
      expect(plain.process([answer], 1100 + i)[0]!.out).toBe(r2.packet ? Buffer.from(r2.packet).toString('hex') : null);
    }
  }
  expect(forwards).toBeGreaterThan(15);
}

describe('a host written from ABI.md §13 alone', () => {
  it('loads an iptables-mode config.svp and answers like Dataplane.load', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 12n, record: true });
    dp.apply(readFileSync(join(import.meta.dirname, 'fixtures/web.yaml'), 'utf8'));
    await agree(dp.compiled());
  });

  it('loads a direct-mode config.svp and answers like Dataplane.load', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 13n, record: true });
    dp.setServices([
      { vip: '10.96.0.80', port: 80, endpoints: ['10.244.1.11:8080', '10.244.2.12:8080'] },
      { vip: '10.96.0.53', port: 53, protocol: 'UDP', endpoints: ['10.244.1.21:53'] },
    ]);
    await agree(dp.compiled());
  });

  it('refuses a damaged file before calling the core', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], record: true });
    const svp = dp.compiled();
    svp[svp.length - 1]! ^= 1;
    await expect(PlainHost.load(coreBytes(), svp)).rejects.toThrow('svp: crc');
  });
});
