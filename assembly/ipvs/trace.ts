// ipvs/trace.ts — "where would a new connection from this client go?", answered without changing
// anything: the existing entry (and whether a SYN would reuse it), the persistence template, or the
// scheduler's pick — for rr/wrr the next destination in sequence (run on a copy of the cursor), for
// lblc/lblcr without touching the cache, for twos the exact probability of every destination.
// Written to a buffer the host decodes (host-node/ipvs/program.ts trace()):
//   header 16 bytes: u32 kind (TRACE_*), u32 service id (NIL: none), u32 entry (connection or
//   template; NIL), u32 record count; then records of 16 bytes: u32 destination id, u32 0,
//   f64 probability (1 for a deterministic answer).
// traceFollow() gives the iptables trace (netfilter/hooks.ts) one destination to follow through
// the hooks after IPVS: the deterministic one, or for twos the first with a chance.
// Allocates nothing after start-up; never draws from the random stream.
import { Flow, PROTO_TCP } from "../flow";
import { NIL, SVC_F_PERSISTENT, SCHED_TWOS, sysctl, SYS_CONN_REUSE_MODE } from "./defs";
import { svcFind, svcFlags, svcFwmark, svcPort, svcSched, svcSchedState, svcFirst } from "./service";
import { connInGet, connDest, connDport } from "./conn";
import { schedPeek } from "./sched/index";
import { twosOdds } from "./sched/twos";
import { templatePeek, templateUsable } from "./persist";
import { newConnExpected } from "./core";
import { destNext, destPort } from "./dest";

export const TRACE_NONE: u32 = 0;       // no virtual service: IPVS passes the packet on
export const TRACE_CONN: u32 = 1;       // an existing connection entry decides
export const TRACE_TEMPLATE: u32 = 2;   // a persistence template decides
export const TRACE_SCHED: u32 = 3;      // the scheduler's next choice
export const TRACE_ODDS: u32 = 4;       // twos: probability per destination
export const TRACE_NO_DEST: u32 = 5;    // no destination available: ICMP port unreachable

export const TRACE_MAX: u32 = 4096;
export const TRACE_BYTES: usize = 16 + <usize>TRACE_MAX * 16;
export const traceBuf: usize = heap.alloc(TRACE_BYTES);
const odds: usize = heap.alloc(<usize>TRACE_MAX << 3);
const tf: Flow = changetype<Flow>(heap.alloc(offsetof<Flow>()));

function header(kind: u32, svc: u32, entry: u32, n: u32): i32 {
  store<u32>(traceBuf, kind);
  store<u32>(traceBuf, svc, 4);
  store<u32>(traceBuf, entry, 8);
  store<u32>(traceBuf, n, 12);
  return <i32>n;
}

function one(kind: u32, svc: u32, entry: u32, dest: u32): i32 {
  store<u32>(traceBuf + 16, dest);
  store<u32>(traceBuf + 16, 0, 4);
  store<f64>(traceBuf + 16, 1.0, 8);
  return header(kind, svc, entry, 1);
}

/** Traces a new TCP SYN / UDP / SCTP packet; returns the record count (header in traceBuf). */
export function trace(family: u8, proto: u8, s0: u32, s1: u32, s2: u32, s3: u32, sport: u16,
    d0: u32, d1: u32, d2: u32, d3: u32, dport: u16, mark: u32, now: u32): i32 {
  const f = tf;
  memory.fill(changetype<usize>(f), 0, offsetof<Flow>());
  f.family = family; f.proto = proto; f.sport = sport; f.dport = dport;
  f.s0 = s0; f.s1 = s1; f.s2 = s2; f.s3 = s3;
  f.d0 = d0; f.d1 = d1; f.d2 = d2; f.d3 = d3;
  f.tcpFlags = proto == PROTO_TCP ? 0x02 : 0;
  const c = connInGet(family, proto, s0, s1, s2, s3, sport, d0, d1, d2, d3, dport, now, true);
  if (c != NIL && !(proto == PROTO_TCP && sysctl(SYS_CONN_REUSE_MODE) != 0 && newConnExpected(c))) {
    return one(TRACE_CONN, NIL, c, connDest(c));
  }
  const s = svcFind(family, mark, proto, d0, d1, d2, d3, dport);
  if (s == NIL) return header(TRACE_NONE, NIL, NIL, 0);
  const flags = svcFlags(s);
  if ((flags & SVC_F_PERSISTENT) != 0) {
    const ct = templatePeek(s, f, now);
    if (ct != NIL && templateUsable(ct)) return one(TRACE_TEMPLATE, s, ct, connDest(ct));
  } else if (svcFwmark(s) == 0 && dport != svcPort(s)) {
    return header(TRACE_NO_DEST, s, NIL, 0);
  }
  const sched = svcSched(s);
  const first = svcFirst(s);
  if (sched == SCHED_TWOS) {
    const n = twosOdds(first, odds, TRACE_MAX);
    let k: u32 = 0, any = false;
    for (let d = first; d != NIL && k < n; d = destNext(d), k++) {
      const r = traceBuf + 16 + (<usize>k << 4);
      const p = load<f64>(odds + (<usize>k << 3));
      if (p > 0) any = true;
      store<u32>(r, d);
      store<u32>(r, 0, 4);
      store<f64>(r, p, 8);
    }
    return header(any ? TRACE_ODDS : TRACE_NO_DEST, s, NIL, any ? n : 0);
  }
  const d = schedPeek(sched, svcSchedState(s), first, f, flags, now);
  if (d == NIL) return header(TRACE_NO_DEST, s, NIL, 0);
  return one(TRACE_SCHED, s, NIL, d);
}

/** traceFollow(): IPVS would answer with ICMP port unreachable (ip_vs_leave). */
export const FOLLOW_LEAVE: u32 = 0xFFFFFFFE;
/** The port the destination traceFollow() returned forwards to. */
export let followPort: u16 = 0;

/**
 * The destination a traced packet `f` goes to through IPVS (NIL: IPVS leaves it alone,
 * FOLLOW_LEAVE: no destination), with its port in followPort. Reads, never changes, IPVS state.
 */
export function traceFollow(f: Flow, mark: u32, now: u32): u32 {
  const n = trace(f.family, f.proto, f.s0, f.s1, f.s2, f.s3, f.sport, f.d0, f.d1, f.d2, f.d3, f.dport, mark, now);
  const kind = load<u32>(traceBuf);
  if (kind == TRACE_NONE) return NIL;
  if (kind == TRACE_NO_DEST) return FOLLOW_LEAVE;
  for (let k: i32 = 0; k < n; k++) {
    const r = traceBuf + 16 + (<usize>k << 4);
    if (load<f64>(r, 8) <= 0) continue;
    const d = load<u32>(r);
    const entry = load<u32>(traceBuf, 8);
    if (kind == TRACE_CONN) followPort = connDport(entry);
    else if (kind == TRACE_TEMPLATE && connDport(entry) != 0) followPort = connDport(entry);
    else followPort = destPort(d) != 0 ? destPort(d) : f.dport;
    return d;
  }
  return FOLLOW_LEAVE;
}
