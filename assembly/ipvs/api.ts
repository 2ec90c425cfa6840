// ipvs/api.ts — IPVS's part of the ABI (re-exported by assembly/index.ts): set-up, programming of
// virtual services and destinations (ipvsadm -A/-E/-D/-a/-e/-d/-C/-Z/--set), sysctls, listing
// (-L, -L -c, --stats, --rate), the trace, periodic work and an IPVS-only batch entry. Numbers in,
// numbers out; records are written to one fixed exchange buffer (ipvsBufPtr, IPVS_BUF_BYTES) whose
// layouts are below and decoded by host-node/ipvs/program.ts. Control calls return ≥ 0 or a
// negative E_* code (defs.ts). Addresses are four Tuple words (IPv4: word 0, the rest 0); ports in
// host order; times in ms (`nowMs` as f64, like processBatch), persistence timeouts in seconds.
//
// Records in the exchange buffer:
//   service (64 B): 0 u8 family, 1 u8 protocol, 2 u16 port, 4 u32 fwmark, 8 u32×4 address,
//     24 u8 scheduler, 28 u32 flags, 32 u32 timeout (ms), 36 u32 netmask, 40 u32 destinations,
//     44 u32 scheduler parameter, 48 u32 first destination id
//   destination (64 B): 0 u8 family, 1 u8 forwarding method, 2 u16 port, 4 i32 weight,
//     8 u32×4 address, 24 u32 upper threshold, 28 u32 lower threshold, 32 u32 flags,
//     36 u32 activeconns, 40 u32 inactconns, 44 u32 persistconns, 48 u32 service id,
//     52 u32 next destination id, 56 i32 last weight
//   stats (80 B): u64 conns, inpkts, outpkts, inbytes, outbytes, then the rates cps, inpps, outpps,
//     inbps, outbps (ip_vs_read_estimator units)
//   connection (80 B): 0 u8 family, 1 u8 protocol (0: fwmark template), 2 u8 state, 3 u8 method,
//     4 u16 flags, 6 u16 client port, 8 u16 virtual port, 10 u16 destination port,
//     12 u32 ms to expiry, 16 u32×4 client, 32 u32×4 virtual, 48 u32×4 destination address,
//     64 u32 destination id, 68 u32 template (NIL) or, for a template, connections controlled,
//     72 u32 timeout (ms), 76 u32 1 for a persistence template, else 0
import { flow, Flow } from "../flow";
import { VERDICT_PASS, VERDICT_DROP, R_NONE, R_BAD_SLOT } from "../verdict";
import { D_OFF, D_LEN, D_CAP, D_META, D_VERDICT, D_REASON, D_AUX, META_CSUM_PARTIAL, ioDesc, ioData, IO_DATA_BYTES, IO_MAX_BATCH, DESC_BYTES } from "../io";
import { parse } from "../wire/parse";
import {
  NIL, E_OK, E_INVAL, E_NOENT, E_NOTREADY, E_NOMEM, counters, IC_COUNT, setSysctl, SYS_COUNT, FWD_MASK,
  CF_TEMPLATE, TUN_IPIP, TUN_GUE, TUN_GRE, TUNF_REMCSUM,
} from "./defs";
import {
  destPoolInit, destAt, destIsUsed, destSvc, destFlags, destNext, destStat, DEST_BYTES,
  destZeroStats, D_TRASH, destTun, destSetTun, DEST_LIMIT, DSTAT_BYTES, destAf,
} from "./dest";
import { setEncapSeed } from "./encap";
import {
  svcPoolInit, svcAt, svcAdd, svcEdit, svcDelete, svcFlush, svcDestAdd, svcDestEdit, svcDestDelete,
  svcDestLookup, svcLookupAddr, svcLookupFwmark, svcIsLive, svcNextLive, svcStat, svcFirst, svcMax,
  svcZeroStats, svcLive, SVC_BYTES, SVC_LIMIT, SSTAT_BYTES,
} from "./service";
import {
  connInit, connNextUsed, connDropAll, connAt, connDest, connRemaining, connReap, connUsed, connCapacity,
  CONN_BYTES, CONN_LOG2_MIN, CONN_LOG2_MAX,
} from "./conn";
import { setTimeouts, getTimeout, protoReset } from "./proto";
import { connSave, connLoad, connRecordValid, IPVS_RECORD_BYTES } from "./snapshot";
import { ipvsProcess, ipvsReady, setIpvsReady } from "./core";
import { estTick, estRead, totStat } from "./est";
import { schedTick } from "./sched/index";
import { svcSched, svcSchedState } from "./service";
import { trace, traceBuf, TRACE_BYTES } from "./trace";
import { results, RESULT_BYTES, setTunnelSource, resultFor, resultClear } from "./xmit";
import { coreNow } from "../clock";
import { inMemory, memoryFits } from "../alloc";

export const IPVS_BUF_BYTES: usize = 65536;
const buf: usize = heap.alloc(IPVS_BUF_BYTES);

/**
 * Sizes IPVS: 2^connLog2 connection entries (4..24), and the first size of the service and
 * destination pools (each doubles when full, to SVC_LIMIT / DEST_LIMIT). Once only.
 * Returns 0, E_INVAL for a size out of range, E_NOTREADY when called twice.
 */
export function ipvsInit(connLog2: u32, services: u32, dests: u32, seed: u32): i32 {
  if (ipvsReady) return E_NOTREADY;
  if (connLog2 < CONN_LOG2_MIN || connLog2 > CONN_LOG2_MAX) return E_INVAL;
  if (services == 0 || services > SVC_LIMIT || dests == 0 || dests > DEST_LIMIT) return E_INVAL;
  // The tables first taken (each block under the allocator's limit at these bounds), hash
  // buckets and address records counted generously.
  const need = ((<u64>CONN_BYTES + 2) << connLog2) + <u64>services * (SVC_BYTES + SSTAT_BYTES + 64) +
    <u64>dests * (DEST_BYTES + DSTAT_BYTES);
  if (!memoryFits(need)) return E_NOMEM;
  connInit(connLog2, seed ^ 0x1F2E3D4C);
  svcPoolInit(services, seed ^ 0x5A6B7C8D);
  destPoolInit(dests);
  setEncapSeed(seed ^ 0x6C7D8E9F);
  protoReset();
  setIpvsReady(true);
  return E_OK;
}
export function ipvsIsReady(): bool { return ipvsReady; }
export function ipvsBufPtr(): usize { return buf; }
export function ipvsBufBytes(): u32 { return <u32>IPVS_BUF_BYTES; }

// ---- services (-A, -E, -D, -C)
export function ipvsAddService(af: u32, proto: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32,
    fwmark: u32, sched: u32, flags: u32, timeoutSec: u32, netmask: u32, schedParam: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  if (port > 0xFFFF || af > 0xFF || proto > 0xFF || sched > 0xFF || timeoutSec > 0x7FFFFFFF / 1000) return E_INVAL;
  return svcAdd(<u8>af, <u8>proto, a0, a1, a2, a3, <u16>port, fwmark, <u8>sched, flags, timeoutSec * 1000, netmask, schedParam);
}
export function ipvsEditService(svc: u32, sched: u32, flags: u32, timeoutSec: u32, netmask: u32, schedParam: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  if (sched > 0xFF || timeoutSec > 0x7FFFFFFF / 1000) return E_INVAL;
  return svcEdit(svc, <u8>sched, flags, timeoutSec * 1000, netmask, schedParam);
}
export function ipvsDeleteService(svc: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  return svcDelete(svc);
}
/** The service id for an address:port (or fwmark ≠ 0) key, or E_NOENT. */
export function ipvsFindService(af: u32, proto: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32, fwmark: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  const s = fwmark != 0 ? svcLookupFwmark(<u8>af, fwmark) : svcLookupAddr(<u8>af, <u8>proto, a0, a1, a2, a3, <u16>port);
  return s == NIL ? E_NOENT : <i32>s;
}
export function ipvsFlush(): i32 {
  if (!ipvsReady) return E_NOTREADY;
  svcFlush();
  return E_OK;
}
export function ipvsServiceCount(): u32 { return ipvsReady ? svcLive : 0; }
export function ipvsConnDropAll(nowMs: f64): u32 { return ipvsReady ? connDropAll(coreNow(nowMs)) : 0; }

// ---- destinations (-a, -e, -d)
export function ipvsAddDest(svc: u32, af: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32, fwd: u32,
    weight: i32, uthreshold: u32, lthreshold: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  if (port > 0xFFFF || af > 0xFF || fwd > 0xFF) return E_INVAL;
  return svcDestAdd(svc, <u8>af, a0, a1, a2, a3, <u16>port, <u8>fwd, weight, uthreshold, lthreshold, 0);
}
export function ipvsEditDest(svc: u32, dest: u32, fwd: u32, weight: i32, uthreshold: u32, lthreshold: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  if (fwd > 0xFF) return E_INVAL;
  return svcDestEdit(svc, dest, <u8>fwd, weight, uthreshold, lthreshold, 0);
}
/**
 * ipvsadm --tun-type / --tun-port / --tun-nocsum|--tun-csum|--tun-remcsum of destination `dest`:
 * type 0 IPIP, 1 GUE, 2 GRE; flags 1 checksum, 2 remote checksum. GUE needs a port (1..65535) and at
 * most one flag; GRE no port and not remote checksum; IPIP neither (ipvsadm tunnel_opt_check).
 */
export function ipvsSetDestTunnel(dest: u32, type: u32, port: u32, flags: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  if (!destIsUsed(dest) || type > TUN_GRE || port > 0xFFFF || flags > TUNF_REMCSUM) return E_INVAL;
  if (type == TUN_GUE && port == 0) return E_INVAL;
  if (type != TUN_GUE && (port != 0 || flags == TUNF_REMCSUM)) return E_INVAL;
  if (type == TUN_IPIP && flags != 0) return E_INVAL;
  destSetTun(dest, type | (flags << 8) | (port << 16));
  return E_OK;
}
export function ipvsDeleteDest(svc: u32, dest: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  return svcDestDelete(svc, dest);
}
export function ipvsFindDest(svc: u32, af: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  if (!svcIsLive(svc)) return E_NOENT;
  const d = svcDestLookup(svc, <u8>af, a0, a1, a2, a3, <u16>port);
  return d == NIL ? E_NOENT : <i32>d;
}

// ---- -Z, --set, sysctls, tunnel source
/** ipvsadm -Z: one service and its destinations, or everything (svc = 0xFFFFFFFF) with the totals. */
export function ipvsZero(svc: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  if (svc == NIL) {
    for (let s: u32 = 0; s < svcMax; s++) if (svcIsLive(s)) zeroService(s);
    memory.fill(totStat(0), 0, 128);
    return E_OK;
  }
  if (!svcIsLive(svc)) return E_NOENT;
  zeroService(svc);
  return E_OK;
}
function zeroService(s: u32): void {
  svcZeroStats(s);
  for (let d = svcFirst(s); d != NIL; d = destNext(d)) destZeroStats(d);
}
export function ipvsSetTimeouts(tcpSec: u32, tcpfinSec: u32, udpSec: u32): i32 {
  return setTimeouts(tcpSec, tcpfinSec, udpSec) ? E_OK : E_INVAL;
}
/** 0 tcp, 1 tcpfin, 2 udp: the timeout in ms. */
export function ipvsGetTimeout(which: u32): u32 { return getTimeout(which); }
export function ipvsSetSysctl(id: u32, value: u32): i32 { return id < SYS_COUNT && setSysctl(id, value) ? E_OK : E_INVAL; }
export function ipvsSetTunnelSource(af: u32, a0: u32, a1: u32, a2: u32, a3: u32): i32 {
  if (af != 4 && af != 6) return E_INVAL;
  setTunnelSource(<u8>af, a0, a1, a2, a3);
  return E_OK;
}
export function ipvsCountersPtr(): usize { return counters; }
export function ipvsCountersCount(): u32 { return IC_COUNT; }

// ---- listing
/** The next live service id ≥ `from`, or 0xFFFFFFFF. */
export function ipvsServiceNext(from: u32): u32 { return ipvsReady ? svcNextLive(from) : NIL; }
/** Writes the service record to the buffer; returns its size, 0 for no such service. */
export function ipvsServiceInfo(svc: u32): u32 {
  if (!ipvsReady || !svcIsLive(svc)) return 0;
  const p = svcAt(svc);
  memory.fill(buf, 0, 64);
  store<u8>(buf, load<u8>(p, 18));
  store<u8>(buf, load<u8>(p, 19), 1);
  store<u16>(buf, load<u16>(p, 16), 2);
  store<u32>(buf, load<u32>(p, 20), 4);
  memory.copy(buf + 8, p, 16);
  store<u8>(buf, load<u8>(p, 36), 24);
  store<u32>(buf, load<u32>(p, 24), 28);
  store<u32>(buf, load<u32>(p, 28), 32);
  store<u32>(buf, load<u32>(p, 32), 36);
  store<u32>(buf, load<u32>(p, 44), 40);
  store<u32>(buf, load<u32>(p, 52), 44);
  store<u32>(buf, load<u32>(p, 40), 48);
  return 64;
}
/** Writes the destination record; returns its size, 0 for no such destination. */
export function ipvsDestInfo(dest: u32): u32 {
  if (!ipvsReady || !destIsUsed(dest)) return 0;
  const p = destAt(dest);
  memory.fill(buf, 0, 64);
  store<u8>(buf, load<u8>(p, 18));
  store<u8>(buf, load<u8>(p, 19), 1);
  store<u16>(buf, load<u16>(p, 16), 2);
  store<i32>(buf, load<i32>(p, 20), 4);
  memory.copy(buf + 8, p, 16);
  store<u32>(buf, load<u32>(p, 28), 24);
  store<u32>(buf, load<u32>(p, 32), 28);
  store<u32>(buf, destFlags(dest) & 0xFF | ((destFlags(dest) & D_TRASH) != 0 ? 0x100 : 0), 32);
  store<u32>(buf, load<u32>(p, 40), 36);
  store<u32>(buf, load<u32>(p, 44), 40);
  store<u32>(buf, load<u32>(p, 48), 44);
  store<u32>(buf, destSvc(dest), 48);
  store<u32>(buf, destNext(dest), 52);
  store<i32>(buf, load<i32>(p, 24), 56);
  store<u32>(buf, destTun(dest), 60);
  return 64;
}
function writeStats(base: usize): u32 {
  for (let k: u32 = 0; k < 5; k++) {
    store<u64>(buf + (<usize>k << 3), load<u64>(base + (<usize>k << 3)));
    store<u64>(buf + (<usize>(k + 5) << 3), estRead(base, k));
  }
  return 80;
}
/** Writes a stats record for a service (0xFFFFFFFF: the totals); returns 80, or 0. */
export function ipvsServiceStats(svc: u32): u32 {
  if (!ipvsReady) return 0;
  if (svc == NIL) return writeStats(totStat(0));
  return svcIsLive(svc) ? writeStats(svcStat(svc, 0)) : 0;
}
export function ipvsDestStats(dest: u32): u32 {
  if (!ipvsReady || !destIsUsed(dest)) return 0;
  return writeStats(destStat(dest, 0));
}

/** The next used connection entry ≥ `from`, or 0xFFFFFFFF (ipvsadm -L -c order). */
export function ipvsConnNext(from: u32): u32 { return ipvsReady ? connNextUsed(from) : NIL; }
/** Writes the connection record for entry `idx`; returns 80, or 0 for a free slot. */
export function ipvsConnInfo(idx: u32, nowMs: f64): u32 {
  if (!ipvsReady || idx >= connCapacity) return 0;
  const p = connAt(idx);
  if (load<u8>(p, 58) == 0) return 0;
  const flags = load<u16>(p, 62);
  store<u8>(buf, load<u8>(p, 58));
  store<u8>(buf, load<u8>(p, 59), 1);
  store<u8>(buf, load<u8>(p, 60), 2);
  store<u8>(buf, <u8>(flags & FWD_MASK), 3);
  store<u16>(buf, flags, 4);
  store<u16>(buf, load<u16>(p, 52), 6);
  store<u16>(buf, load<u16>(p, 54), 8);
  store<u16>(buf, load<u16>(p, 56), 10);
  store<u32>(buf, connRemaining(idx, coreNow(nowMs)), 12);
  memory.copy(buf + 16, p, 32);
  const d = connDest(idx);
  memory.copy(buf + 48, destAt(d), 16);
  store<u32>(buf, d, 64);
  store<u32>(buf, load<u32>(p, 48), 68);
  store<u32>(buf, load<u32>(p, 40), 72);
  store<u8>(buf, (flags & CF_TEMPLATE) != 0 ? 1 : 0, 76);
  // The real server's own family (a tunnel may cross families): its address at 48 is of that one.
  store<u8>(buf, destAf(d), 77);
  store<u16>(buf, 0, 78);
  return 80;
}
/**
 * Writes entry `idx` as a snapshot record (ipvs/snapshot.ts, IPVS_RECORD_BYTES) at `out`; returns
 * its size, or 0 for a free or expired entry.
 */
export function ipvsConnSave(idx: u32, out: usize, nowMs: f64): u32 {
  return ipvsReady && inMemory(out, IPVS_RECORD_BYTES) ? connSave(idx, out, coreNow(nowMs)) : 0;
}
/**
 * Loads a snapshot record at `ptr`, controlled by template entry `template` (its new id; NIL for
 * none). Returns the new entry id or a negative E_* code, with nothing changed on error.
 */
export function ipvsConnLoad(ptr: usize, nowMs: f64, template: u32): i32 {
  if (!ipvsReady) return E_NOTREADY;
  return inMemory(ptr, IPVS_RECORD_BYTES) ? connLoad(ptr, coreNow(nowMs), template) : E_INVAL;
}
/** Whether the snapshot record at `ptr` is well formed (1) or not (0); needs no IPVS table. */
export function ipvsConnCheck(ptr: usize): u32 { return inMemory(ptr, IPVS_RECORD_BYTES) && connRecordValid(ptr) ? 1 : 0; }
export function ipvsConnRecordBytes(): u32 { return IPVS_RECORD_BYTES; }
export function ipvsConnCount(): u32 { return ipvsReady ? connUsed : 0; }
export function ipvsConnCapacity(): u32 { return ipvsReady ? connCapacity : 0; }
/** Bytes per connection entry, and per connection including its share of the hash buckets. */
export function ipvsConnEntryBytes(): u32 { return <u32>CONN_BYTES; }
export function ipvsConnBytesPerEntry(): u32 { return <u32>CONN_BYTES + 2; }
export function ipvsServiceRecordBytes(): u32 { return <u32>(SVC_BYTES + 128); }
export function ipvsDestRecordBytes(): u32 { return <u32>(DEST_BYTES + 128); }

// ---- trace
/** Traces a new connection (TCP: a SYN); returns the record count, header and records in ipvsTraceBuf. */
export function ipvsTrace(af: u32, proto: u32, s0: u32, s1: u32, s2: u32, s3: u32, sport: u32,
    d0: u32, d1: u32, d2: u32, d3: u32, dport: u32, fwmark: u32, nowMs: f64): i32 {
  if (!ipvsReady) return E_NOTREADY;
  if (af != 4 && af != 6) return E_INVAL;
  return trace(<u8>af, <u8>proto, s0, s1, s2, s3, <u16>sport, d0, d1, d2, d3, <u16>dport, fwmark, coreNow(nowMs));
}
export function ipvsTraceBuf(): usize { return traceBuf; }
export function ipvsTraceBytes(): u32 { return <u32>TRACE_BYTES; }

// ---- time-driven work
/** Expires connection entries whose time is up, scanning at most `budget` slots. Returns removed. */
export function ipvsExpire(nowMs: f64, budget: u32): u32 {
  return ipvsReapConns(coreNow(nowMs), budget);
}
/** The same for the core's batch loop (time already in wrapping ms). */
export function ipvsReapConns(now: u32, budget: u32): u32 {
  return ipvsReady ? connReap(now, budget) : 0;
}
/** The periodic timers: the rate estimator (2 s) and lblc/lblcr cache collection (60 s). */
export function ipvsTick(nowMs: f64): u32 {
  if (!ipvsReady) return 0;
  const now = coreNow(nowMs);
  let n = estTick(now);
  for (let s: u32 = 0; s < svcMax; s++) {
    if (svcIsLive(s)) n += schedTick(svcSched(s), svcSchedState(s), now);
  }
  return n;
}

// ---- packets
export function ipvsResultPtr(): usize { return results; }
export function ipvsResultBytes(): u32 { return <u32>RESULT_BYTES; }

/**
 * IPVS alone over descriptors [0, count) of the I/O arena (for hosts and benchmarks that want the
 * IPVS path without the rest of the pipeline): parse, ipvsProcess; a packet IPVS does not take
 * passes unchanged. The descriptor's mark field is read as the packet's fwmark (input here).
 * Returns the number processed.
 */
export function ipvsProcessBatch(count: u32, nowMs: f64): u32 {
  if (!ipvsReady || ioDesc == 0) return 0;
  if (count > IO_MAX_BATCH) count = IO_MAX_BATCH;
  const now = coreNow(nowMs);
  const f: Flow = flow;
  for (let i: u32 = 0; i < count; i++) {
    const d = ioDesc + <usize>i * DESC_BYTES;
    const off = load<u32>(d, D_OFF), len = load<u32>(d, D_LEN), cap = load<u32>(d, D_CAP);
    store<u32>(d, NIL, D_AUX);
    if (<u64>off + <u64>cap > <u64>IO_DATA_BYTES || len > cap) {
      store<u8>(d, VERDICT_DROP, D_VERDICT);
      store<u16>(d, R_BAD_SLOT, D_REASON);
      continue;
    }
    f.csumPartial = (load<u32>(d, D_META) & META_CSUM_PARTIAL) != 0;
    const r = parse(f, ioData + off, len, cap);
    if (r != R_NONE) {
      store<u8>(d, VERDICT_DROP, D_VERDICT);
      store<u16>(d, r, D_REASON);
      continue;
    }
    if (f.len < len) store<u32>(d, f.len, D_LEN);
    resultClear(resultFor(d));
    if (!ipvsProcess(d, f, now, load<u32>(d, D_META))) {
      store<u8>(d, VERDICT_PASS, D_VERDICT);
      store<u16>(d, R_NONE, D_REASON);
    }
  }
  return count;
}
