// svp.ts — loads a compiled config (.svp, ABI.md §13) into the core linked into this module: checks
// the whole file first (magic, format and ABI version, length, CRC-32, every op's id, argument
// count, buffer kind and blob size), then replays the recorded control calls in order, writing each
// blob into the buffer the call reads and requiring every call to return what it returned when the
// config was compiled. Never allocates per packet and never parses rule text; runs once at start-up.
import {
  ABI_VERSION, init, nodeClear, nodeLocal, nodePodCIDR, nodeServiceCIDR, nodeMasquerade, nodeDnsAddress,
  cfgBuffer, loadServices, conntrackTimeout, iptStageChain, iptStagePatch, iptStageDelete, iptSetPolicy, iptCommit, iptAbort,
  iptSetIfName, iptModeSet, ipsetCreate, ipsetDestroy, ipsetFlush, ipsetSwap, ipsetRename, ipsetAdd, ipsetDel,
  ipsetBegin, ipsetCommit, ipsetAbort, ipsetElem, ipvsInit, ipvsAddService, ipvsEditService, ipvsDeleteService,
  ipvsFlush, ipvsAddDest, ipvsEditDest, ipvsDeleteDest, ipvsSetTimeouts, ipvsSetSysctl, ipvsSetTunnelSource,
  dnsBuffer, dnsLoad, svcApply, svcNodePorts, svcNodePortAddr, ipvsSetDestTunnel, dnsForward,
} from "../index";

const SVP_MAGIC: u32 = 0x31505653; // "SVP1"
const SVP_VERSION: u32 = 1;
const HEADER: u32 = 32;
const OP_HEADER: u32 = 16;
const MAX_BLOB: u32 = 1 << 28;

const BUF_NONE: u8 = 0;
const BUF_CFG: u8 = 1;
const BUF_ELEM: u8 = 2;
const BUF_DNS: u8 = 3;
const OP_MAX: u32 = 44;

// Per op id: argc | buffer kind << 8 | (ptrArg + 1) << 16 (the same table as host-node/embed/svp.ts).
const OPS: StaticArray<u32> = [
  0,
  4, 0, 5, 6, 6, 5, 6,                                  // 1 init .. 7 nodeDnsAddress
  1 | 1 << 8,                                           // 8 loadServices (cfg)
  2,                                                    // 9 conntrackTimeout
  3 | 1 << 8 | 2 << 16, 1, 2, 0, 0,                     // 10 iptStageChain (cfg, ptr arg 1) .. 14 iptAbort
  3 | 1 << 8 | 2 << 16, 1,                              // 15 iptSetIfName, 16 iptModeSet
  9, 1, 1, 2, 2,                                        // 17 ipsetCreate .. 21 ipsetRename
  3 | 2 << 8, 3 | 2 << 8,                               // 22 ipsetAdd, 23 ipsetDel (element buffer)
  0, 0, 0,                                              // 24 ipsetBegin .. 26 ipsetAbort
  4, 13, 6, 1, 0, 11, 6, 2, 3, 2, 5,                    // 27 ipvsInit .. 37 ipvsSetTunnelSource
  1 | 3 << 8,                                           // 38 dnsLoad (DNS stage)
  1 | 1 << 8,                                           // 39 svcApply (cfg)
  3, 5, 4, 1,                                           // 40 svcNodePorts .. 43 dnsForward
  5 | 1 << 8 | 2 << 16,                                 // 44 iptStagePatch (cfg, ptr arg 1)
];

/** Why the last load failed (a static string); empty on success. */
export let svpError: string = "";
/** The op whose replay failed, its result and the recorded one (svpError says which kind). */
export let svpFailedOp: i32 = -1;
export let svpGot: i32 = 0;
export let svpWant: i32 = 0;

let crcTable: usize = 0;

// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as zlib's crc32().
function crc32(p: usize, n: usize): u32 {
  if (crcTable == 0) {
    crcTable = heap.alloc(1024);
    for (let i: u32 = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      store<u32>(crcTable + (<usize>i << 2), c);
    }
  }
  let c: u32 = 0xffffffff;
  for (let i: usize = 0; i < n; i++) c = load<u32>(crcTable + (<usize>((c ^ load<u8>(p + i)) & 0xff) << 2)) ^ (c >>> 8);
  return c ^ 0xffffffff;
}

@inline function pad8(n: u32): u32 { return (n + 7) & ~7; }
@inline function a(p: usize, i: i32): u32 { return <u32><i64>load<f64>(p + (<usize>i << 3)); }

function fail(msg: string): bool { svpError = msg; return false; }

/** Checks every byte of the file at `p` (`n` bytes) without applying anything. */
export function svpCheck(p: usize, n: usize): bool {
  if (n < <usize>HEADER) return fail("truncated: shorter than the 32-byte header");
  if (load<u32>(p) != SVP_MAGIC) return fail("not a svcplane config (bad magic)");
  if (<u32>load<u16>(p, 4) != SVP_VERSION) return fail("unsupported format version (this tool reads version 1)");
  if (<u32>load<u16>(p, 6) != ABI_VERSION) return fail("compiled for another core ABI version");
  const count = load<u32>(p, 8);
  const body = load<u32>(p, 12);
  if (n < <usize>HEADER + body) return fail("truncated: shorter than its header says");
  if (n > <usize>HEADER + body) return fail("trailing bytes after the body");
  if (crc32(p + HEADER, body) != load<u32>(p, 16)) return fail("checksum mismatch: the file is damaged");
  const metaLen = load<u32>(p, 20);
  if (pad8(metaLen) > body || metaLen > body) return fail("meta block longer than the body");
  let at = <usize>HEADER + pad8(metaLen);
  for (let k: u32 = 0; k < count; k++) {
    if (at + OP_HEADER > n) return fail("ops end before the op count is reached");
    const id = <u32>load<u16>(p + at);
    if (id == 0 || id > OP_MAX) return fail("unknown op id");
    if (k == 0 && id != 1) return fail("the first op must be init");
    const spec = unchecked(OPS[id]);
    const argc = <u32>load<u8>(p + at, 2);
    const kind = load<u8>(p + at, 3);
    const blob = load<u32>(p + at, 4);
    if (argc != (spec & 0xff)) return fail("an op has the wrong argument count");
    if (<u32>kind != ((spec >> 8) & 0xff)) return fail("an op names the wrong buffer kind");
    if (kind == BUF_NONE ? blob != 0 : (blob > MAX_BLOB || (kind == BUF_ELEM && blob != 64))) return fail("an op carries a blob of the wrong size");
    at += <usize>OP_HEADER + (<usize>argc << 3);
    if (at + pad8(blob) > n) return fail("an op runs past the end of the file");
    for (let i: u32 = 0; i < argc; i++) {
      const v = load<f64>(p + at - (<usize>(argc - i) << 3));
      if (v != v || v - v != 0) return fail("an op argument is not a finite number");
    }
    at += pad8(blob);
  }
  if (at != n) return fail("bytes after the last op");
  return true;
}

// One recorded call; `ptr` is the buffer the blob was written to (0 without a blob).
function call(id: u32, x: usize, ptr: usize): i32 {
  switch (id) {
    case 1: return init(a(x, 0), a(x, 1), a(x, 2), a(x, 3));
    case 2: nodeClear(); return 0;
    case 3: return nodeLocal(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4));
    case 4: nodePodCIDR(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4), <i32>a(x, 5)); return 0;
    case 5: nodeServiceCIDR(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4), <i32>a(x, 5)); return 0;
    case 6: nodeMasquerade(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4)); return 0;
    case 7: return nodeDnsAddress(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4), a(x, 5));
    case 8: return loadServices(a(x, 0));
    case 9: return conntrackTimeout(a(x, 0), a(x, 1));
    case 10: return iptStageChain(a(x, 0), ptr, a(x, 2));
    case 11: return iptStageDelete(a(x, 0));
    case 12: return iptSetPolicy(a(x, 0), a(x, 1));
    case 13: return iptCommit();
    case 14: iptAbort(); return 0;
    case 15: return iptSetIfName(a(x, 0), ptr, a(x, 2));
    case 16: iptModeSet(a(x, 0)); return 0;
    case 17: return ipsetCreate(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4), a(x, 5), a(x, 6), a(x, 7), a(x, 8));
    case 18: return ipsetDestroy(a(x, 0));
    case 19: return ipsetFlush(a(x, 0));
    case 20: return ipsetSwap(a(x, 0), a(x, 1));
    case 21: return ipsetRename(a(x, 0), a(x, 1));
    case 22: return ipsetAdd(a(x, 0), a(x, 1), load<f64>(x, 16));
    case 23: return ipsetDel(a(x, 0), a(x, 1), load<f64>(x, 16));
    case 24: return ipsetBegin();
    case 25: return ipsetCommit();
    case 26: return ipsetAbort();
    case 27: return ipvsInit(a(x, 0), a(x, 1), a(x, 2), a(x, 3));
    case 28: return ipvsAddService(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4), a(x, 5), a(x, 6), a(x, 7), a(x, 8), a(x, 9), a(x, 10), a(x, 11), a(x, 12));
    case 29: return ipvsEditService(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4), a(x, 5));
    case 30: return ipvsDeleteService(a(x, 0));
    case 31: return ipvsFlush();
    case 32: return ipvsAddDest(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4), a(x, 5), a(x, 6), a(x, 7), <i32>a(x, 8), a(x, 9), a(x, 10));
    case 33: return ipvsEditDest(a(x, 0), a(x, 1), a(x, 2), <i32>a(x, 3), a(x, 4), a(x, 5));
    case 34: return ipvsDeleteDest(a(x, 0), a(x, 1));
    case 35: return ipvsSetTimeouts(a(x, 0), a(x, 1), a(x, 2));
    case 36: return ipvsSetSysctl(a(x, 0), a(x, 1));
    case 37: return ipvsSetTunnelSource(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4));
    case 38: return dnsLoad(a(x, 0));
    case 39: return svcApply(a(x, 0));
    case 40: svcNodePorts(a(x, 0), a(x, 1), a(x, 2)); return 0;
    case 41: return svcNodePortAddr(a(x, 0), a(x, 1), a(x, 2), a(x, 3), a(x, 4));
    case 42: return ipvsSetDestTunnel(a(x, 0), a(x, 1), a(x, 2), a(x, 3));
    case 43: dnsForward(a(x, 0)); return 0;
    case 44: return iptStagePatch(a(x, 0), ptr, a(x, 2), a(x, 3), a(x, 4));
  }
  return 0;
}

/** Replays a file svpCheck accepted into the (uninitialised) core. False with svpError set on a mismatch. */
export function svpApply(p: usize): bool {
  const count = load<u32>(p, 8);
  let at = <usize>HEADER + pad8(load<u32>(p, 20));
  for (let k: u32 = 0; k < count; k++) {
    const id = <u32>load<u16>(p + at);
    const spec = unchecked(OPS[id]);
    const argc = <usize>(spec & 0xff);
    const kind = <u8>((spec >> 8) & 0xff);
    const blob = load<u32>(p + at, 4);
    const want = load<i32>(p + at, 8);
    const args = p + at + OP_HEADER;
    const src = args + (argc << 3);
    let dst: usize = 0;
    if (kind == BUF_CFG) dst = cfgBuffer(blob);
    else if (kind == BUF_DNS) dst = dnsBuffer(blob);
    else if (kind == BUF_ELEM) dst = ipsetElem();
    if (kind != BUF_NONE) memory.copy(dst, src, blob);
    const got = call(id, args, dst);
    if (got != want) {
      svpFailedOp = <i32>k; svpGot = got; svpWant = want;
      svpError = "a recorded call returned another result than when the config was compiled";
      return false;
    }
    at = src + pad8(blob) - p;
  }
  return true;
}
