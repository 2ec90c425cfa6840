// ipvs/vip.ts — the addresses of the address:port virtual services, counted per address, so that
// they are local addresses of the node the way kube-proxy makes them: it binds every ClusterIP,
// external IP and load-balancer IP to the dummy device kube-ipvs0 (pkg/proxy/ipvs/proxier.go
// syncService → netlinkHandle.EnsureAddressBind), which puts the address in the kernel's local
// routing table. A packet to such an address is then routed to LOCAL_IN, where IPVS takes it
// (ip_vs_core.c ip_vs_ops4: ip_vs_remote_request4 at NF_INET_LOCAL_IN), and `-m addrtype
// --dst-type LOCAL` matches it. Fwmark services have no address and add nothing.
// node.ts isLocal() asks vipIsLocal(). The table is sized with the service pool (one record per
// service at most) and grows with it; add/remove run on the control path, the lookup on the
// packet path. Allocates only in vipInit and vipGrow.
import { NIL } from "./defs";
import { regrow } from "../alloc";

// Record (32 bytes): 0 u32×4 address, 16 u8 family, 20 u32 references, 24 u32 hash-chain next
// (free-list link when unused).
const V_BYTES: usize = 32;
const V_FAM: usize = 16;
const V_REF: usize = 20;
const V_NEXT: usize = 24;

let pool: usize = 0;
let cap: u32 = 0;
let buckets: usize = 0;
let mask: u32 = 0;
let free: u32 = NIL;
let live: u32 = 0;

export function vipInit(max: u32): void {
  pool = heap.alloc(<usize>max * V_BYTES);
  cap = 0;
  free = NIL;
  live = 0;
  buckets = 0;
  vipGrow(max);
}

/** Room for `max` addresses (at least as many as now): records keep their ids, chains are rehashed. */
export function vipGrow(max: u32): void {
  if (cap != 0) pool = regrow(pool, <usize>cap * V_BYTES, <usize>max * V_BYTES);
  for (let i = max; i > cap; i--) {
    store<u32>(pool + <usize>(i - 1) * V_BYTES, free, V_NEXT);
    free = i - 1;
  }
  cap = max;
  let n: u32 = 16;
  while (n < max) n <<= 1;
  const old = buckets, oldCount: u32 = buckets == 0 ? 0 : mask + 1;
  buckets = heap.alloc(<usize>n << 2);
  memory.fill(buckets, 0xFF, <usize>n << 2);   // every bucket NIL
  mask = n - 1;
  for (let b: u32 = 0; b < oldCount; b++) {
    let v = load<u32>(old + (<usize>b << 2));
    while (v != NIL) {
      const p = pool + <usize>v * V_BYTES;
      const next = load<u32>(p, V_NEXT);
      const nb = bucket(load<u8>(p, V_FAM), load<u32>(p), load<u32>(p, 4), load<u32>(p, 8), load<u32>(p, 12));
      store<u32>(p, load<u32>(nb), V_NEXT);
      store<u32>(nb, v);
      v = next;
    }
  }
  if (old != 0) heap.free(old);
}

// @ts-ignore: decorator
@inline function bucket(af: u8, a0: u32, a1: u32, a2: u32, a3: u32): usize {
  let h = (a0 ^ (a1 * 0x9E3779B1) ^ (a2 * 0x85EBCA77) ^ (a3 * 0xC2B2AE3D) ^ <u32>af) * 0x7FEB352D;
  h ^= h >>> 15;
  return buckets + (<usize>(h & mask) << 2);
}

function find(af: u8, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  let v = load<u32>(bucket(af, a0, a1, a2, a3));
  while (v != NIL) {
    const p = pool + <usize>v * V_BYTES;
    if (load<u32>(p) == a0 && load<u32>(p, 4) == a1 && load<u32>(p, 8) == a2 && load<u32>(p, 12) == a3 &&
        load<u8>(p, V_FAM) == af) return v;
    v = load<u32>(p, V_NEXT);
  }
  return NIL;
}

/** Is the address one a virtual service listens on (bound to kube-ipvs0)? */
export function vipIsLocal(af: u8, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  return live != 0 && find(af, a0, a1, a2, a3) != NIL;
}

/** A service with this address was hashed in. False only when the pool is full (cannot happen:
 *  it has one record per service). */
export function vipAdd(af: u8, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  const v = find(af, a0, a1, a2, a3);
  if (v != NIL) {
    const p = pool + <usize>v * V_BYTES;
    store<u32>(p, load<u32>(p, V_REF) + 1, V_REF);
    return true;
  }
  if (free == NIL) return false;
  const n = free;
  const p = pool + <usize>n * V_BYTES;
  free = load<u32>(p, V_NEXT);
  store<u32>(p, a0); store<u32>(p, a1, 4); store<u32>(p, a2, 8); store<u32>(p, a3, 12);
  store<u8>(p, af, V_FAM);
  store<u32>(p, 1, V_REF);
  const b = bucket(af, a0, a1, a2, a3);
  store<u32>(p, load<u32>(b), V_NEXT);
  store<u32>(b, n);
  live++;
  return true;
}

/** A service with this address was hashed out. */
export function vipRemove(af: u8, a0: u32, a1: u32, a2: u32, a3: u32): void {
  const b = bucket(af, a0, a1, a2, a3);
  let prev = NIL, v = load<u32>(b);
  while (v != NIL) {
    const p = pool + <usize>v * V_BYTES;
    const next = load<u32>(p, V_NEXT);
    if (load<u32>(p) == a0 && load<u32>(p, 4) == a1 && load<u32>(p, 8) == a2 && load<u32>(p, 12) == a3 &&
        load<u8>(p, V_FAM) == af) {
      const ref = load<u32>(p, V_REF) - 1;
      store<u32>(p, ref, V_REF);
      if (ref != 0) return;
      if (prev == NIL) store<u32>(b, next); else store<u32>(pool + <usize>prev * V_BYTES, next, V_NEXT);
      store<u32>(p, free, V_NEXT);
      free = v;
      live--;
      return;
    }
    prev = v;
    v = next;
  }
}
