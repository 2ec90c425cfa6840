// netfilter/match-ipvs.ts — the matches that look at what IPVS and bridging did to the packet:
//   M_IPVS     net/netfilter/xt_ipvs.c ipvs_mt(): `--ipvs` is skb->ipvs_property (pk.ipvs: IPVS
//              handled the packet in this traversal, hooks.ts); every other criterion needs it and
//              the packet's IPVS entry, found as xt_ipvs finds it — conn_out_get with the packet's
//              addresses inverted, i.e. the entry of a request on its way to the real server.
//              Op words: 1 bitmask | invert << 8 | l4proto << 16 | method << 24, 2 vport |
//              vportctl << 16, 3–6 virtual address, 7–10 its mask (raw words).
//   M_PHYSDEV  net/netfilter/xt_physdev.c physdev_mt() for a packet without bridge information —
//              the only kind this dataplane sees: the host compiled the answer (1 holds, 0 never).
// Never allocates; never changes IPVS or conntrack state.
import { Flow } from "../flow";
import { pk } from "./ctx";
import { NIL, FWD_MASK } from "../ipvs/defs";
import { ipvsMatchConn } from "../ipvs/core";
import { connVport, connControl, connFlags, connAt, C_VADDR } from "../ipvs/conn";

// xt_ipvs.h XT_IPVS_*.
const X_PROPERTY: u32 = 1;
const X_PROTO: u32 = 2;
const X_VADDR: u32 = 4;
const X_VPORT: u32 = 8;
const X_DIR: u32 = 16;
const X_METHOD: u32 = 32;
const X_VPORTCTL: u32 = 64;

// Each criterion holds when its test agrees with "not inverted" (the kernel's `test ^ !invert`
// failing the match).
@inline function fails(test: bool, inv: u32, bit: u32): bool {
  return test == ((inv & bit) != 0);
}

export function ipvsMatch(p: usize, f: Flow): bool {
  const w = load<u32>(p, 4);
  const bits = w & 0x7F, inv = (w >> 8) & 0x7F;
  if (bits == X_PROPERTY) return pk.ipvs != ((inv & X_PROPERTY) != 0);
  if (!pk.ipvs) return false;
  if ((bits & X_PROTO) != 0 && fails(<u32>f.proto == ((w >> 16) & 0xFF), inv, X_PROTO)) return false;
  const c = ipvsMatchConn(f, pk.now);
  if (c == NIL) return false;
  const ports = load<u32>(p, 8);
  if ((bits & X_VPORT) != 0 && fails(<u32>connVport(c) == (ports & 0xFFFF), inv, X_VPORT)) return false;
  if ((bits & X_VPORTCTL) != 0) {
    const ctl = connControl(c);
    if (fails(ctl != NIL && <u32>connVport(ctl) == (ports >>> 16), inv, X_VPORTCTL)) return false;
  }
  if ((bits & X_DIR) != 0) {
    // ctinfo >= IP_CT_IS_REPLY; no connection at all fails the match.
    if (!pk.pending && pk.ctIdx == 0xFFFFFFFF) return false;
    const reply = !pk.pending && pk.ctDir == 1;
    if (reply != ((inv & X_DIR) != 0)) return false;
  }
  if ((bits & X_METHOD) != 0 && fails(<u32>(connFlags(c) & FWD_MASK) == (w >>> 24), inv, X_METHOD)) return false;
  if ((bits & X_VADDR) != 0) {
    const a = connAt(c) + C_VADDR;
    const diff = ((load<u32>(a) ^ load<u32>(p, 12)) & load<u32>(p, 28)) |
      ((load<u32>(a, 4) ^ load<u32>(p, 16)) & load<u32>(p, 32)) |
      ((load<u32>(a, 8) ^ load<u32>(p, 20)) & load<u32>(p, 36)) |
      ((load<u32>(a, 12) ^ load<u32>(p, 24)) & load<u32>(p, 40));
    if (fails(diff == 0, inv, X_VADDR)) return false;
  }
  return true;
}

export function physdevMatch(p: usize): bool {
  return load<u32>(p, 4) != 0;
}
