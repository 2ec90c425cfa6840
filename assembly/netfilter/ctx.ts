// netfilter/ctx.ts — what the iptables engine knows about the packet in hand while it crosses the
// hooks: hook, interfaces, mark, its connection (a stored one, or the pending one a NEW packet
// will create at confirm), and the connection facts matches read (tuples, status, connmark). One
// instance reserved at start-up and reset per packet; never allocates, never decides anything.
//
// The pending connection mirrors the kernel's unconfirmed nf_conn: its original tuple is the
// packet as conntrack first saw it, its reply tuple the inverse until a NAT binding changes it,
// and it reaches the table only when the packet is accepted (hooks.ts confirm). The connmark is
// read into `ctm` at conntrack time and written back once at the end, so a trace can change it
// without touching the table.
import { Tuple } from "../flow";
import { CTS_INVALID } from "./format";
import { ctOrig, ctReply, ctStatus, ctMark, ctSetMark, CT_NONE } from "../conntrack/table";
import { natStatus, CT_SNAT, CT_DNAT } from "../conntrack/entry";

@unmanaged
export class Pkt {
  d: usize;          // the descriptor
  now: u32;
  len: u32;          // bytes, for rule counters
  hook: u32;
  inIf: u32;         // ingress interface index (0: none)
  outIf: u32;        // egress interface index (0: none)
  mark: u32;
  ctIdx: u32;        // stored connection (the master for RELATED), or CT_NONE
  ctDir: u32;
  ctState: u32;      // CTS_* base state: INVALID, ESTABLISHED, RELATED, NEW or UNTRACKED
  ctm: u32;          // connmark
  reason: u32;
  curChain: u32;     // rule being evaluated (for trace decisions)
  curRule: u32;
  local: bool;       // originated on this node (OUTPUT path)
  pending: bool;     // NEW: the connection exists only in pendOrig/pendReply
  untracked: bool;
  related: bool;     // an ICMP error about ctIdx
  dnatInit: bool;    // pending: destination NAT binding made (nf_nat_initialized)
  snatInit: bool;
  ctmDirty: bool;
  rewritten: bool;   // NAT changed the packet
  ipvs: bool;        // skb->ipvs_property: IPVS handled the packet (hooks.ts)
  ipvsDest: u32;     // the IPVS destination when `ipvs` (the descriptor's aux)
  ipvsFwd: u32;      // its forwarding method (ipvs/defs.ts FWD_*)
  natHide: u32;      // status bits a tuple difference would imply but no NAT made (IPVS's
                     // nf_conntrack_alter_reply sets no IPS_DST_NAT)
}

export const pendOrig: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));
export const pendReply: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

// Cleared with 64-bit stores (a bulk memory.fill leaves wasm for a runtime call per packet).
const PKT_WORDS: usize = (offsetof<Pkt>() + 7) >> 3;
const pkAt: usize = heap.alloc(PKT_WORDS << 3);
export const pk: Pkt = changetype<Pkt>(pkAt);

export function pktReset(d: usize, now: u32, len: u32): void {
  for (let i: usize = 0; i < PKT_WORDS; i++) store<u64>(pkAt + (i << 3), 0);
  pk.d = d;
  pk.now = now;
  pk.len = len;
  pk.ctIdx = CT_NONE;
  // Before conntrack has seen it (the raw table runs first), a packet has no connection, and
  // xt_state / xt_conntrack call that INVALID.
  pk.ctState = CTS_INVALID;
}

// Does the packet have a connection (stored, related master, or pending)?
@inline export function hasCt(): bool {
  return pk.pending || pk.ctIdx != CT_NONE;
}

export function ctOrigInto(out: Tuple): void {
  if (pk.pending) out.copyFrom(pendOrig);
  else ctOrig(pk.ctIdx, out);
}

export function ctReplyInto(out: Tuple): void {
  if (pk.pending) out.copyFrom(pendReply);
  else ctReply(pk.ctIdx, out);
}

// The connection's status bits (conntrack/entry.ts CT_*); a pending one has only its NAT bits.
export function ctStatusBits(): u32 {
  if (pk.pending) return natStatus(pendOrig, pendReply) & ~pk.natHide;
  if (pk.ctIdx == CT_NONE) return 0;
  return ctStatus(pk.ctIdx);
}

// xt_conntrack's SNAT/DNAT state bits come from the same status.
export function ctNatBits(): u32 {
  const s = ctStatusBits();
  return ((s & CT_SNAT) != 0 ? 1 : 0) | ((s & CT_DNAT) != 0 ? 2 : 0);
}

export function ctmLoad(): void {
  pk.ctm = pk.ctIdx != CT_NONE ? ctMark(pk.ctIdx) : 0;
  pk.ctmDirty = false;
}

export function ctmSet(v: u32): void {
  if (v == pk.ctm) return;
  pk.ctm = v;
  pk.ctmDirty = true;
}

// Writes a changed connmark to the stored connection `idx`.
export function ctmStore(idx: u32): void {
  if (pk.ctmDirty && idx != CT_NONE) ctSetMark(idx, pk.ctm);
  pk.ctmDirty = false;
}
