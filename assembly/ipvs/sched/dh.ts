// ipvs/sched/dh.ts — destination hashing (net/netfilter/ipvs/ip_vs_dh.c).
//
// A 256-bucket table maps the hash of the packet's destination address (hash_32 of the host-order
// address, IPv6 folded by XOR of its four words) to a destination. The table is filled when
// destinations are added or removed: bucket i gets the i-th destination of the list taken
// circularly, ignoring weights. A bucket whose destination is unavailable (weight ≤ 0 or
// overloaded) yields no destination — dh has no fallback. Meant for caches behind fwmark services,
// where the destination address varies; for an address:port service every packet hashes alike.
//
// The table is rebuilt only by destination changes; never allocates after dhInit.
import { Flow } from "../../flow";
import { NIL, addrFoldHost, hash32, DEST_F_AVAILABLE, DEST_F_OVERLOAD } from "../defs";
import { destNext, destWeight, destFlags } from "../dest";

export const DH_TAB_BITS: u32 = 8;   // CONFIG_IP_VS_DH_TAB_BITS default
export const DH_TAB_SIZE: u32 = 1 << DH_TAB_BITS;
export const DH_STATE_BYTES: usize = <usize>DH_TAB_SIZE * 4;

// ip_vs_dh.c ip_vs_dh_reassign(): add_dest and del_dest (dh has no upd_dest).
export function dhReassign(state: usize, first: u32): void {
  let p = first;
  for (let i: u32 = 0; i < DH_TAB_SIZE; i++) {
    if (first == NIL) {
      store<u32>(state + (<usize>i << 2), NIL);
      continue;
    }
    if (p == NIL) p = first;
    store<u32>(state + (<usize>i << 2), p);
    p = destNext(p);
  }
}

// ip_vs_dh_hashkey().
// @ts-ignore: decorator
@inline export function dhBucket(f: Flow): u32 {
  return hash32(addrFoldHost(f.family, f.d0, f.d1, f.d2, f.d3), DH_TAB_BITS);
}

// ip_vs_dh.c ip_vs_dh_schedule().
export function dhSchedule(state: usize, f: Flow): u32 {
  const d = load<u32>(state + (<usize>dhBucket(f) << 2));
  if (d == NIL) return NIL;
  const flags = destFlags(d);
  if ((flags & DEST_F_AVAILABLE) == 0 || destWeight(d) <= 0 || (flags & DEST_F_OVERLOAD) != 0) return NIL;
  return d;
}
