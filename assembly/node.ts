// node.ts — facts about the node the core runs for: its own addresses (addrtype LOCAL), the pod
// CIDRs (what counts as "from a pod" for masquerade decisions) and the masquerade source address
// per family. Set by the host through control calls; read on the packet path without allocation.
// Never decides anything by itself.
import { Tuple, FAMILY_V4 } from "./flow";
import { vipIsLocal } from "./ipvs/vip";

const MAX_LOCAL: u32 = 64;
// Local addresses: 4 words each, family in a parallel byte array.
const localAddrs: usize = heap.alloc(<usize>MAX_LOCAL * 16);
const localFam: usize = heap.alloc(<usize>MAX_LOCAL);
let localCount: u32 = 0;

// Pod CIDR per family: network words (host order, for prefix compare) and prefix length; -1 = unset.
const podNet: usize = heap.alloc(32);
let podLen4: i32 = -1;
let podLen6: i32 = -1;

// Service CIDR per family (as the pod CIDR); -1 = unset.
const svcNet: usize = heap.alloc(32);
let svcLen4: i32 = -1;
let svcLen6: i32 = -1;

// Masquerade address per family (raw words).
const masq4: usize = heap.alloc(16);
const masq6: usize = heap.alloc(16);
let haveMasq4 = false;
let haveMasq6 = false;

export function nodeReset(): void {
  localCount = 0; podLen4 = -1; podLen6 = -1; svcLen4 = -1; svcLen6 = -1; haveMasq4 = false; haveMasq6 = false;
}

export function nodeAddLocal(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  if (localCount >= MAX_LOCAL) return false;
  const p = localAddrs + <usize>localCount * 16;
  store<u32>(p, a0); store<u32>(p, a1, 4); store<u32>(p, a2, 8); store<u32>(p, a3, 12);
  store<u8>(localFam + localCount, family);
  localCount++;
  return true;
}

export function nodeSetPodCIDR(family: u8, a0: u32, a1: u32, a2: u32, a3: u32, prefix: i32): void {
  const p = podNet + (family == FAMILY_V4 ? 0 : 16);
  store<u32>(p, bswap<u32>(a0)); store<u32>(p, bswap<u32>(a1), 4);
  store<u32>(p, bswap<u32>(a2), 8); store<u32>(p, bswap<u32>(a3), 12);
  if (family == FAMILY_V4) podLen4 = prefix; else podLen6 = prefix;
}

export function nodeSetMasq(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): void {
  const p = family == FAMILY_V4 ? masq4 : masq6;
  store<u32>(p, a0); store<u32>(p, a1, 4); store<u32>(p, a2, 8); store<u32>(p, a3, 12);
  if (family == FAMILY_V4) haveMasq4 = true; else haveMasq6 = true;
}

@inline export function masqAddr(family: u8): usize { return family == FAMILY_V4 ? masq4 : masq6; }
@inline export function haveMasq(family: u8): bool { return family == FAMILY_V4 ? haveMasq4 : haveMasq6; }

// Is the address (raw words) one of the node's own?
export function isLocal(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  for (let i: u32 = 0; i < localCount; i++) {
    const p = localAddrs + <usize>i * 16;
    if (load<u8>(localFam + i) == family && load<u32>(p) == a0 && load<u32>(p, 4) == a1 &&
        load<u32>(p, 8) == a2 && load<u32>(p, 12) == a3) return true;
  }
  // IPVS virtual addresses are bound to the node (kube-ipvs0): ipvs/vip.ts.
  return vipIsLocal(family, a0, a1, a2, a3);
}

// Prefix test on raw words against a network given in host-order words.
@inline export function wordsInPrefix(a0: u32, a1: u32, a2: u32, a3: u32, net: usize, len: i32): bool {
  let rem = len;
  for (let i = 0; i < 4; i++) {
    if (rem <= 0) return true;
    const w = bswap<u32>(i == 0 ? a0 : i == 1 ? a1 : i == 2 ? a2 : a3);
    const n = load<u32>(net + (<usize>i << 2));
    const m: u32 = rem >= 32 ? 0xFFFFFFFF : ~(0xFFFFFFFF >>> <u32>rem);
    if (((w ^ n) & m) != 0) return false;
    rem -= 32;
  }
  return true;
}

// Known to come from a pod? False when no pod CIDR is configured for the family.
export function fromPod(t: Tuple): bool {
  const len = t.family == FAMILY_V4 ? podLen4 : podLen6;
  if (len < 0) return false;
  return wordsInPrefix(t.s0, t.s1, t.s2, t.s3, podNet + (t.family == FAMILY_V4 ? 0 : 16), len);
}

export function nodeSetServiceCIDR(family: u8, a0: u32, a1: u32, a2: u32, a3: u32, prefix: i32): void {
  const p = svcNet + (family == FAMILY_V4 ? 0 : 16);
  store<u32>(p, bswap<u32>(a0)); store<u32>(p, bswap<u32>(a1), 4);
  store<u32>(p, bswap<u32>(a2), 8); store<u32>(p, bswap<u32>(a3), 12);
  if (family == FAMILY_V4) svcLen4 = prefix; else svcLen6 = prefix;
}

// Addressed to the service CIDR? False when none is configured for the family.
export function toServiceCIDR(t: Tuple): bool {
  const len = t.family == FAMILY_V4 ? svcLen4 : svcLen6;
  if (len < 0) return false;
  return wordsInPrefix(t.d0, t.d1, t.d2, t.d3, svcNet + (t.family == FAMILY_V4 ? 0 : 16), len);
}

export function havePodCIDR(family: u8): bool { return (family == FAMILY_V4 ? podLen4 : podLen6) >= 0; }
