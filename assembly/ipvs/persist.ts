// ipvs/persist.ts — persistent scheduling (net/netfilter/ipvs/ip_vs_core.c ip_vs_sched_persist):
// a client keeps its destination for the service's persistence timeout through a template entry.
// The template key is <protocol, client address masked by the service netmask, port 0, virtual
// address, virtual port>, where
//   the packet's port is the service's:  vport = that port (FTP's port 21 uses 0: its data
//                                         connections share the template);
//   a fwmark service:                     protocol 0 (IPPROTO_IP), virtual address = the fwmark;
//   a port-zero service:                  vport 0, so every port of the address shares it.
// An existing template whose destination is gone (or quiescent, with the
// expire_quiescent_template sysctl) is invalidated (ip_vs_check_template) and a new one made with a
// fresh scheduling decision; the template's own destination port is the destination's port when
// the packet's port is the service's, else 0. The connection itself is made by the caller, bound to
// the template (ip_vs_control_add), whose timer then restarts at the persistence timeout.
import { Flow, FAMILY_V4 } from "../flow";
import {
  NIL, CF_TEMPLATE, sysctl, SYS_EXPIRE_QUIESCENT_TEMPLATE, count, IC_TEMPLATE_NEW,
  IC_TEMPLATE_INVALID,
} from "./defs";
import { destAvailable, destWeight, destPort } from "./dest";
import { svcFwmark, svcPort, svcNetmask, svcSched, svcSchedState, svcFirst, svcFlags, svcTimeout } from "./service";
import { connTemplateGet, connNew, connDest, connInvalidateTemplate, setConnTimeout, connTouch } from "./conn";
import { schedule } from "./sched/index";

const FTPPORT: u16 = 21;

export const PS_OK: u32 = 0;
export const PS_NO_DEST: u32 = 1;   // ip_vs_leave: no destination
export const PS_FULL: u32 = 2;      // the template could not be stored: drop

// Results of persistPick.
export let psTemplate: u32 = NIL;
export let psDest: u32 = NIL;
export let psDport: u16 = 0;

// The template key, filled by templateKey.
let kProto: u8 = 0;
let kc0: u32 = 0, kc1: u32 = 0, kc2: u32 = 0, kc3: u32 = 0;
let kv0: u32 = 0, kv1: u32 = 0, kv2: u32 = 0, kv3: u32 = 0;
let kVport: u16 = 0;

// ipv6_addr_prefix() on one Tuple word: keep the first `bits` (0..32) bits in network order.
// @ts-ignore: decorator
@inline function prefixWord(w: u32, bits: i32): u32 {
  if (bits <= 0) return 0;
  if (bits >= 32) return w;
  return w & bswap<u32>(<u32>0xFFFFFFFF << (32 - <u32>bits));
}

export function templateKey(s: u32, f: Flow): void {
  // Mask saddr with the netmask to adjust template granularity.
  if (f.family == FAMILY_V4) {
    kc0 = f.s0 & svcNetmask(s); kc1 = 0; kc2 = 0; kc3 = 0;
  } else {
    const plen = <i32>svcNetmask(s);
    kc0 = prefixWord(f.s0, plen); kc1 = prefixWord(f.s1, plen - 32);
    kc2 = prefixWord(f.s2, plen - 64); kc3 = prefixWord(f.s3, plen - 96);
  }
  kProto = f.proto;
  kv0 = f.d0; kv1 = f.d1; kv2 = f.d2; kv3 = f.d3;
  kVport = 0;
  const sport = svcPort(s);
  if (f.dport == sport) {
    if (sport != FTPPORT) kVport = f.dport;
  } else {
    const mark = svcFwmark(s);
    if (mark != 0) {
      kProto = 0;
      kv0 = bswap<u32>(mark); kv1 = 0; kv2 = 0; kv3 = 0;
    }
  }
}

/** The template for the packet's client (without changing anything); NIL when there is none. */
export function templatePeek(s: u32, f: Flow, now: u32): u32 {
  templateKey(s, f);
  return connTemplateGet(f.family, kProto, kc0, kc1, kc2, kc3, kv0, kv1, kv2, kv3, kVport, now, true);
}

// ip_vs_conn.c ip_vs_check_template() (with expire_quiescent_template()).
export function templateUsable(ct: u32): bool {
  const d = connDest(ct);
  return destAvailable(d) && !(sysctl(SYS_EXPIRE_QUIESCENT_TEMPLATE) != 0 && destWeight(d) == 0);
}

/**
 * Finds or makes the template for the packet and sets psTemplate, psDest and psDport (the port the
 * connection forwards to). Returns PS_OK, PS_NO_DEST or PS_FULL.
 */
export function persistPick(s: u32, f: Flow, now: u32): u32 {
  templateKey(s, f);
  let ct = connTemplateGet(f.family, kProto, kc0, kc1, kc2, kc3, kv0, kv1, kv2, kv3, kVport, now, false);
  if (ct != NIL && !templateUsable(ct)) {
    connInvalidateTemplate(ct);
    count(IC_TEMPLATE_INVALID);
    ct = NIL;
  }
  let dest: u32;
  const sport = svcPort(s);
  if (ct == NIL) {
    dest = schedule(svcSched(s), svcSchedState(s), svcFirst(s), f, svcFlags(s), now);
    if (dest == NIL) return PS_NO_DEST;
    const tport: u16 = f.dport == sport && sport != FTPPORT ? destPort(dest) : 0;
    ct = connNew(f.family, kProto, kc0, kc1, kc2, kc3, 0, kv0, kv1, kv2, kv3, kVport, dest, tport, CF_TEMPLATE, now);
    if (ct == NIL) return PS_FULL;
    setConnTimeout(ct, svcTimeout(s));
    connTouch(ct, now);
    count(IC_TEMPLATE_NEW);
  } else {
    dest = connDest(ct);
  }
  let dport = f.dport;
  if (dport == sport && destPort(dest) != 0) dport = destPort(dest);
  psTemplate = ct;
  psDest = dest;
  psDport = dport;
  return PS_OK;
}

