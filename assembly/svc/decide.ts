// svc/decide.ts — what kube-proxy's iptables rules would do with the first packet of a connection,
// decided from the direct service table in one lookup (pkg/proxy/iptables/proxier.go
// syncProxyRules, as host-node/kube/render-iptables.ts renders it):
//   - nat KUBE-SERVICES: a cluster IP, external IP or load-balancer IP and port; else, when the
//     destination is a node-port address (KUBE-NODEPORTS jump: `--dst-type LOCAL`, or one `-d`
//     per --nodeport-addresses host address), the node port;
//   - KUBE-SVC / KUBE-SVL / KUBE-EXT / KUBE-FW chains: traffic policy, masquerade marks, the
//     pod-or-host short-circuit of externalTrafficPolicy Local, loadBalancerSourceRanges;
//   - KUBE-SEP: hairpin masquerade, session affinity;
//   - filter KUBE-SERVICES / KUBE-EXTERNAL-SERVICES / KUBE-PROXY-FIREWALL: REJECT without
//     endpoints, DROP without local endpoints, DROP outside the source ranges. The node-port rules
//     there match any LOCAL destination, not just the node-port addresses.
// Sets the chosen destination and the masquerade decision in module globals. Never allocates,
// never rewrites the packet (pipeline.ts does), never reads a clock.
import { Flow, FAMILY_V4 } from "../flow";
import { isLocal, fromPod, havePodCIDR, wordsInPrefix } from "../node";
import { randBelow } from "../rand";
import {
  feFind, feKind, feSlot, slotFlags, slotLive, slotClusterCount, slotLocalCount, slotRangeCount, slotRange, slotDest,
  slotAffinityMs, slotGeneration, slotHostId, KEY_ADDR, KEY_NODEPORT, FE_CLUSTER, FE_LB,
  SVD_F_AFFINITY, SVD_F_MASQ_ALL, SVD_F_ITP_LOCAL, SVD_F_ETP_LOCAL, SVD_F_HAS_EP, SVD_F_FIREWALL,
} from "./table";
import {
  affinityGet, affinitySet, affinityLoad, affinityEntry, affinityEntrySlot, affinityEntryGen, affinityEntryStamp, affinityWrite,
  AFFINITY_SAVED_BYTES, AFFINITY_ENTRIES,
} from "./affinity";

// Outcomes of svcDecide.
export const SD_NONE: u32 = 0;        // no service here: the packet goes on untouched
export const SD_DNAT: u32 = 1;        // to decidedDest (masquerade when decidedMasq)
export const SD_REJECT: u32 = 2;      // no endpoints: REJECT (icmp-port-unreachable)
export const SD_DROP_LOCAL: u32 = 3;  // traffic policy Local with no local endpoint: DROP
export const SD_DROP_SOURCE: u32 = 4; // outside loadBalancerSourceRanges: DROP

export let decidedDest: usize = 0;
export let decidedMasq = false;
export let decidedHostId: u32 = 0;

// Node-port addresses per family: every LOCAL address (--nodeport-addresses empty: `-m addrtype
// --dst-type LOCAL`, loopback included or not), or an explicit list (`-d <address>` rules).
const MAX_NP: u32 = 64;
const npAddrs: usize = heap.alloc(<usize>MAX_NP * 16);
const npFam: usize = heap.alloc(<usize>MAX_NP);
let npCount: u32 = 0;
let npAll4 = true, npAll6 = true;
let npLoop4 = true, npLoop6 = false;

// How node ports are reached for `family`: all = any LOCAL address, loopback = 127.0.0.0/8 (::1)
// counts among them. With all = false only addresses added by svcNodePortAddress do.
export function svcNodePortMode(family: u8, all: bool, loopback: bool): void {
  if (family == FAMILY_V4) { npAll4 = all; npLoop4 = loopback; } else { npAll6 = all; npLoop6 = loopback; }
  let k: u32 = 0;
  for (let i: u32 = 0; i < npCount; i++) {
    if (load<u8>(npFam + i) == family) continue;
    memory.copy(npAddrs + <usize>k * 16, npAddrs + <usize>i * 16, 16);
    store<u8>(npFam + k, load<u8>(npFam + i));
    k++;
  }
  npCount = k;
}

export function svcNodePortAddress(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  if (npCount >= MAX_NP) return false;
  const p = npAddrs + <usize>npCount * 16;
  store<u32>(p, a0); store<u32>(p, a1, 4); store<u32>(p, a2, 8); store<u32>(p, a3, 12);
  store<u8>(npFam + npCount, family);
  npCount++;
  return true;
}

@inline function loopback(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  if (family == FAMILY_V4) return (a0 & 0xFF) == 127;
  return (a0 | a1 | a2) == 0 && a3 == 0x01000000;
}

// addrtype LOCAL (netfilter/match-addr.ts: the node's addresses and loopback).
@inline function localType(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  return loopback(family, a0, a1, a2, a3) || isLocal(family, a0, a1, a2, a3);
}

function nodePortAddress(f: Flow): bool {
  const v4 = f.family == FAMILY_V4;
  if (v4 ? npAll4 : npAll6) {
    if (loopback(f.family, f.d0, f.d1, f.d2, f.d3)) return v4 ? npLoop4 : npLoop6;
    return isLocal(f.family, f.d0, f.d1, f.d2, f.d3);
  }
  for (let i: u32 = 0; i < npCount; i++) {
    const p = npAddrs + <usize>i * 16;
    if (load<u8>(npFam + i) == f.family && load<u32>(p) == f.d0 && load<u32>(p, 4) == f.d1 &&
        load<u32>(p, 8) == f.d2 && load<u32>(p, 12) == f.d3) return true;
  }
  return false;
}

function inSourceRanges(s: u32, f: Flow): bool {
  const n = slotRangeCount(s);
  for (let r: u32 = 0; r < n; r++) {
    const p = slotRange(s, r);
    if (wordsInPrefix(f.s0, f.s1, f.s2, f.s3, p, <i32>load<u32>(p, 16))) return true;
  }
  return false;
}

// Destinations [first, first + n) of slot s: the client's affinity destination when it is among
// them and fresh, else a uniform random one; the choice is stamped for the client.
function choose(s: u32, first: u32, n: u32, f: Flow, now: u32): usize {
  const affinity = (slotFlags(s) & SVD_F_AFFINITY) != 0;
  const gen = slotGeneration(s);
  if (affinity) {
    const e = affinityGet(s, gen, f.s0, f.s1, f.s2, f.s3, now, slotAffinityMs(s));
    if (e != 0) {
      const port = load<u16>(e, 40);
      const a0 = load<u32>(e, 24), a1 = load<u32>(e, 28), a2 = load<u32>(e, 32), a3 = load<u32>(e, 36);
      for (let i: u32 = 0; i < n; i++) {
        const d = slotDest(s, first + i);
        if (load<u16>(d, 16) == port && load<u32>(d) == a0 && load<u32>(d, 4) == a1 && load<u32>(d, 8) == a2 && load<u32>(d, 12) == a3) {
          affinitySet(s, gen, f.s0, f.s1, f.s2, f.s3, d, now);
          return d;
        }
      }
    }
  }
  const d = slotDest(s, first + randBelow(n));
  if (affinity) affinitySet(s, gen, f.s0, f.s1, f.s2, f.s3, d, now);
  return d;
}

// Control path (explaining a packet): where slot s would send client a0..a3 back to at `now` by
// ClientIP affinity — the destination of the client's fresh stamp, as choose() reads it (address
// words, u16 port at +16) — or 0 (no live slot, no affinity, no fresh stamp). Whether that
// destination is still in the list the packet's policy picks, the caller checks as choose() does.
// Reads only: no stamp is renewed.
export function svcAffinityDest(s: u32, a0: u32, a1: u32, a2: u32, a3: u32, now: u32): usize {
  if (!slotLive(s) || (slotFlags(s) & SVD_F_AFFINITY) == 0) return 0;
  const e = affinityGet(s, slotGeneration(s), a0, a1, a2, a3, now, slotAffinityMs(s));
  return e == 0 ? 0 : e + 24;
}

// Every ClientIP affinity stamp still in force at `now` (its slot live, with affinity, of its
// generation, no older than its timeout), up to `max`, as saved stamps at `out` (affinity.ts), for
// a conntrack snapshot. Returns how many.
export function svcAffinitySaveAll(out: usize, max: u32, now: u32): u32 {
  let n: u32 = 0;
  for (let i: u32 = 0; i < AFFINITY_ENTRIES && n < max; i++) {
    const e = affinityEntry(i);
    if (e == 0) continue;
    const s = affinityEntrySlot(e);
    if (!slotLive(s) || (slotFlags(s) & SVD_F_AFFINITY) == 0 || affinityEntryGen(e) != slotGeneration(s)) continue;
    const age = now - affinityEntryStamp(e);
    if (age > slotAffinityMs(s)) continue;
    affinityWrite(e, out + <usize>n * AFFINITY_SAVED_BYTES, age);
    n++;
  }
  return n;
}

// A saved stamp back into slot `s` (the slot field of the record is ignored: the host maps it);
// false (nothing changed) when the slot has no affinity or the stamp would be past its timeout.
export function svcAffinityLoadSlot(s: u32, r: usize, now: u32): bool {
  if (!slotLive(s) || (slotFlags(s) & SVD_F_AFFINITY) == 0 || load<u32>(r, 40) > slotAffinityMs(s)) return false;
  affinityLoad(s, slotGeneration(s), r, now);
  return true;
}
export { AFFINITY_SAVED_BYTES, AFFINITY_ENTRIES };

// The first packet of a connection: one of SD_*. `local`: the node itself sent it (OUTPUT).
export function svcDecide(f: Flow, now: u32, local: bool): u32 {
  let e = feFind(f.family, f.proto, KEY_ADDR, f.dport, f.d0, f.d1, f.d2, f.d3);
  if (e == 0) {
    if (!localType(f.family, f.d0, f.d1, f.d2, f.d3)) return SD_NONE;
    e = feFind(f.family, f.proto, KEY_NODEPORT, f.dport, 0, 0, 0, 0);
    if (e == 0) return SD_NONE;
    if (!nodePortAddress(f)) {
      // Not captured by nat KUBE-NODEPORTS; only filter KUBE-EXTERNAL-SERVICES (any LOCAL
      // destination) sees it.
      const s = feSlot(e), flags = slotFlags(s);
      decidedHostId = slotHostId(s);
      if ((flags & SVD_F_HAS_EP) == 0) return SD_REJECT;
      if ((flags & SVD_F_ETP_LOCAL) != 0 && slotLocalCount(s) == 0) return SD_DROP_LOCAL;
      return SD_NONE;
    }
  }
  const s = feSlot(e), kind = feKind(e), flags = slotFlags(s);
  decidedHostId = slotHostId(s);
  if ((flags & SVD_F_HAS_EP) == 0) {
    // An external or load-balancer IP's REJECT is in KUBE-EXTERNAL-SERVICES, reached from INPUT and
    // FORWARD only: the node's own packet to such an address that is not the node's sees no rule
    // (nat captures nothing without endpoints) and goes out as it is.
    if (local && kind != FE_CLUSTER && !localType(f.family, f.d0, f.d1, f.d2, f.d3)) return SD_NONE;
    return SD_REJECT;
  }
  const nc = slotClusterCount(s), nl = slotLocalCount(s);
  let first: u32 = 0, n: u32 = nc;
  let masq = false;
  if (kind == FE_CLUSTER) {
    // KUBE-SVC / KUBE-SVL: "cluster IP" masquerade rule (--masquerade-all, or off-cluster source).
    if ((flags & SVD_F_ITP_LOCAL) != 0) {
      if (nl == 0) return SD_DROP_LOCAL;
      first = nc; n = nl;
    }
    masq = (flags & SVD_F_MASQ_ALL) != 0 || (havePodCIDR(f.family) && !fromPod(f));
  } else {
    // KUBE-FW: source ranges (the node-self VIP sources are among the ranges the host sends).
    if (kind == FE_LB && (flags & SVD_F_FIREWALL) != 0 && !inSourceRanges(s, f)) return SD_DROP_SOURCE;
    // KUBE-EXT.
    if ((flags & SVD_F_ETP_LOCAL) == 0) {
      masq = true;
    } else if (havePodCIDR(f.family) && fromPod(f)) {
      // Pod → external destination skips the policy, as if via the load balancer and back.
    } else if (localType(f.family, f.s0, f.s1, f.s2, f.s3)) {
      masq = true;
    } else {
      if (nl == 0) return SD_DROP_LOCAL;
      first = nc; n = nl;
    }
  }
  const d = choose(s, first, n, f, now);
  // KUBE-SEP: an endpoint reaching itself through the service is masqueraded (hairpin).
  if (load<u32>(d) == f.s0 && load<u32>(d, 4) == f.s1 && load<u32>(d, 8) == f.s2 && load<u32>(d, 12) == f.s3) masq = true;
  decidedDest = d;
  decidedMasq = masq;
  return SD_DNAT;
}
