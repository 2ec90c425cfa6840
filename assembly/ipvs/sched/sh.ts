// ipvs/sched/sh.ts — source hashing (net/netfilter/ipvs/ip_vs_sh.c).
//
// A 256-bucket table maps hash_32(source port + host-order source address, 8) to a destination
// (IPv6 addresses folded by XOR of their four words; the port is 0 unless the service has the
// sh-port flag, and then only for TCP/UDP/SCTP). Filling walks the destination list circularly and
// gives each destination `weight` consecutive buckets (a weight-0 destination still gets one: the
// kernel's `++d_count >= weight` moves on after one), so heavier servers own more buckets. A bucket
// whose destination is unavailable (weight ≤ 0 or overloaded) yields no destination, unless the
// service has sh-fallback: then buckets (hash + offset) are tried for offset = ihash, ihash+1, … over
// the whole table (the starting point is the key's own hash, so the fallback is deterministic),
// stopping at an empty bucket.
//
// The table is rebuilt on every add, edit and removal of a destination; never allocates after shInit.
import { Flow, PROTO_TCP, PROTO_UDP, PROTO_SCTP } from "../../flow";
import { NIL, SVC_F_SCHED_FALLBACK, SVC_F_SCHED_PORT, addrFoldHost, hash32 } from "../defs";
import { destNext, destWeight, destOverloaded } from "../dest";

export const SH_TAB_BITS: u32 = 8;   // CONFIG_IP_VS_SH_TAB_BITS default
export const SH_TAB_SIZE: u32 = 1 << SH_TAB_BITS;
const SH_TAB_MASK: u32 = SH_TAB_SIZE - 1;
export const SH_STATE_BYTES: usize = <usize>SH_TAB_SIZE * 4;

// ip_vs_sh.c is_unavailable().
// @ts-ignore: decorator
@inline function unavailable(d: u32): bool { return destWeight(d) <= 0 || destOverloaded(d); }

// ip_vs_sh.c ip_vs_sh_reassign().
export function shReassign(state: usize, first: u32): void {
  let p = first;
  let count: i32 = 0;
  for (let i: u32 = 0; i < SH_TAB_SIZE; i++) {
    if (first == NIL) {
      store<u32>(state + (<usize>i << 2), NIL);
      continue;
    }
    if (p == NIL) p = first;
    store<u32>(state + (<usize>i << 2), p);
    // Don't move to the next destination until it has `weight` buckets.
    if (++count >= destWeight(p)) {
      p = destNext(p);
      count = 0;
    }
  }
}

// ip_vs_sh.c ip_vs_sh_get_port(): the source port, for the protocols that have one.
// @ts-ignore: decorator
@inline export function hashPort(f: Flow, svcFlags: u32): u32 {
  if ((svcFlags & SVC_F_SCHED_PORT) == 0) return 0;
  const p = f.proto;
  return p == PROTO_TCP || p == PROTO_UDP || p == PROTO_SCTP ? <u32>f.sport : 0;
}

// ip_vs_sh.c ip_vs_sh_hashkey().
// @ts-ignore: decorator
@inline function hashkey(key: u32, offset: u32): u32 {
  return (offset + hash32(key, SH_TAB_BITS)) & SH_TAB_MASK;
}

// ip_vs_sh.c ip_vs_sh_schedule() with ip_vs_sh_get() / ip_vs_sh_get_fallback().
export function shSchedule(state: usize, f: Flow, svcFlags: u32): u32 {
  const key = hashPort(f, svcFlags) + addrFoldHost(f.family, f.s0, f.s1, f.s2, f.s3);
  const ihash = hashkey(key, 0);
  let d = load<u32>(state + (<usize>ihash << 2));
  if (d == NIL) return NIL;
  if (!unavailable(d)) return d;
  if ((svcFlags & SVC_F_SCHED_FALLBACK) == 0) return NIL;
  for (let offset: u32 = 0; offset < SH_TAB_SIZE; offset++) {
    const roffset = (offset + ihash) & SH_TAB_MASK;
    d = load<u32>(state + (<usize>hashkey(key, roffset) << 2));
    if (d == NIL) break;
    if (!unavailable(d)) return d;
  }
  return NIL;
}
