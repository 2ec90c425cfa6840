// ipvs/snapshot.ts — IPVS connections and persistence templates saved as fixed-size records and
// loaded into another core, so a proxy restart keeps them as the kernel keeps its ip_vs_conn table
// across a kube-proxy restart. A record names its virtual service and destination by value (the
// new core's ids differ) and its template by the id it had when saved; the host maps saved
// template ids to the new entries. Loading checks every field, the service and destination it
// names, and a clash with an entry already there before anything is stored. Never allocates.
//
// Record (IPVS_RECORD_BYTES = 104, little-endian):
//    0 u8  version (IPVS_RECORD_VERSION)      1 u8 family (4 or 6)
//    2 u8  protocol (0: a fwmark template)   3 u8 state (ip_vs.h IP_VS_TCP_S_*; 0 for others)
//    4 u16 flags (IP_VS_CONN_F_*: method, NOOUTPUT, INACTIVE, TEMPLATE)
//    6 u16 client port   8 u16 virtual port   10 u16 destination port (the connection's)
//   12 i32 remaining lifetime in ms (> 0)
//   16 u32×4 client address   32 u32×4 virtual address   48 u32×4 destination address
//   64 u16 destination record port   66 u8 destination family   67 u8 service protocol
//   68 u32 service fwmark (0: addressed service)   72 u16 service port   74 u8 service family
//   75 u8 0   76 u32 timeout (ms)   80 u32×4 service address
//   96 u32 the entry's id when saved   100 u32 its template's id when saved (0xFFFFFFFF: none;
//          a template: the connections it controlled, informational)
import { PROTO_TCP, PROTO_UDP, PROTO_SCTP } from "../flow";
import {
  NIL, E_INVAL, E_EXIST, E_NOENT, E_NOMEM, FWD_MASK, FWD_DROUTE, CF_NOOUTPUT, CF_INACTIVE,
  CF_TEMPLATE, TCP_S_LAST,
} from "./defs";
import { destAt, destSvc, destPort, destAf } from "./dest";
import {
  svcAt, svcAf, svcProto, svcPort, svcFwmark, svcIsLive, svcLookupAddr, svcLookupFwmark, svcDestLookup,
} from "./service";
import {
  connAt, connIsUsed, connFlags, connDest, connControl, connRemaining, connTimeout, connInGet,
  connTemplateGet, connPlace, connControlAdd,
} from "./conn";

export const IPVS_RECORD_BYTES: u32 = 104;
export const IPVS_RECORD_VERSION: u8 = 1;

const KNOWN_FLAGS: u16 = FWD_MASK | CF_NOOUTPUT | CF_INACTIVE | CF_TEMPLATE;

/** Writes entry `i` as a record at `ptr`; returns IPVS_RECORD_BYTES, or 0 for a free or expired entry. */
export function connSave(i: u32, ptr: usize, now: u32): u32 {
  if (!connIsUsed(i)) return 0;
  const left = connRemaining(i, now);
  if (left == 0) return 0;
  const p = connAt(i);
  const d = connDest(i);
  const s = destSvc(d);
  memory.fill(ptr, 0, IPVS_RECORD_BYTES);
  store<u8>(ptr, IPVS_RECORD_VERSION);
  store<u8>(ptr, load<u8>(p, 58), 1);
  store<u8>(ptr, load<u8>(p, 59), 2);
  store<u8>(ptr, load<u8>(p, 60), 3);
  store<u16>(ptr, connFlags(i), 4);
  store<u16>(ptr, load<u16>(p, 52), 6);
  store<u16>(ptr, load<u16>(p, 54), 8);
  store<u16>(ptr, load<u16>(p, 56), 10);
  store<i32>(ptr, <i32>left, 12);
  memory.copy(ptr + 16, p, 32);
  memory.copy(ptr + 48, destAt(d), 16);
  store<u16>(ptr, destPort(d), 64);
  store<u8>(ptr, destAf(d), 66);
  store<u8>(ptr, svcProto(s), 67);
  store<u32>(ptr, svcFwmark(s), 68);
  store<u16>(ptr, svcPort(s), 72);
  store<u8>(ptr, svcAf(s), 74);
  store<u32>(ptr, connTimeout(i), 76);
  memory.copy(ptr + 80, svcAt(s), 16);
  store<u32>(ptr, i, 96);
  store<u32>(ptr, connControl(i), 100);
  return IPVS_RECORD_BYTES;
}

// An IPv4 address keeps words 1–3 zero.
// @ts-ignore: decorator
@inline function addrOk(ptr: usize, family: u8): bool {
  return family == 6 || (load<u32>(ptr, 4) | load<u32>(ptr, 8) | load<u32>(ptr, 12)) == 0;
}

/** Whether the record at `ptr` is well formed (its fields; not whether its service is here). */
export function connRecordValid(ptr: usize): bool {
  if (load<u8>(ptr) != IPVS_RECORD_VERSION) return false;
  const family = load<u8>(ptr, 1);
  const proto = load<u8>(ptr, 2);
  const state = load<u8>(ptr, 3);
  const flags = load<u16>(ptr, 4);
  const remaining = load<i32>(ptr, 12);
  const timeout = load<u32>(ptr, 76);
  const isTemplate = (flags & CF_TEMPLATE) != 0;
  if (family != 4 && family != 6) return false;
  if ((flags & ~KNOWN_FLAGS) != 0 || <u8>(flags & FWD_MASK) > FWD_DROUTE) return false;
  if (remaining <= 0 || timeout == 0 || timeout > 0x7FFFFFFF) return false;
  if (proto == PROTO_TCP) {
    if (state >= TCP_S_LAST) return false;
  } else if (proto == PROTO_UDP || proto == PROTO_SCTP || (proto == 0 && isTemplate)) {
    if (state != 0) return false;
  } else {
    return false;
  }
  if (isTemplate && load<u16>(ptr, 6) != 0) return false;
  if (!addrOk(ptr + 16, family) || load<u8>(ptr, 75) != 0) return false;
  // A fwmark template keeps the mark in its virtual address word 0 (persist.ts templateKey).
  if (proto != 0 && !addrOk(ptr + 32, family)) return false;
  const sAf = load<u8>(ptr, 74);
  return sAf == 4 || sAf == 6;
}

/**
 * Loads the record at `ptr` as a live entry expiring `remaining` ms after `now`, controlled by
 * template entry `template` (NIL for none). Returns the new entry id, or E_INVAL (a bad field or
 * template), E_NOENT (its service or destination is not here), E_EXIST (the entry is already
 * here) or E_NOMEM (the table is full), with nothing changed.
 */
export function connLoad(ptr: usize, now: u32, template: u32): i32 {
  if (!connRecordValid(ptr)) return E_INVAL;
  const family = load<u8>(ptr, 1);
  const proto = load<u8>(ptr, 2);
  const state = load<u8>(ptr, 3);
  const flags = load<u16>(ptr, 4);
  const cport = load<u16>(ptr, 6);
  const remaining = load<i32>(ptr, 12);
  const timeout = load<u32>(ptr, 76);
  const isTemplate = (flags & CF_TEMPLATE) != 0;
  if (isTemplate && template != NIL) return E_INVAL;
  if (template != NIL && (!connIsUsed(template) || (connFlags(template) & CF_TEMPLATE) == 0)) return E_INVAL;

  const sAf = load<u8>(ptr, 74);
  const mark = load<u32>(ptr, 68);
  const s = mark != 0
    ? svcLookupFwmark(sAf, mark)
    : svcLookupAddr(sAf, load<u8>(ptr, 67), load<u32>(ptr, 80), load<u32>(ptr, 84), load<u32>(ptr, 88), load<u32>(ptr, 92), load<u16>(ptr, 72));
  if (s == NIL || !svcIsLive(s)) return E_NOENT;
  const d = svcDestLookup(s, load<u8>(ptr, 66), load<u32>(ptr, 48), load<u32>(ptr, 52), load<u32>(ptr, 56), load<u32>(ptr, 60), load<u16>(ptr, 64));
  if (d == NIL) return E_NOENT;

  const c0 = load<u32>(ptr, 16), c1 = load<u32>(ptr, 20), c2 = load<u32>(ptr, 24), c3 = load<u32>(ptr, 28);
  const v0 = load<u32>(ptr, 32), v1 = load<u32>(ptr, 36), v2 = load<u32>(ptr, 40), v3 = load<u32>(ptr, 44);
  const vport = load<u16>(ptr, 8);
  const there = isTemplate
    ? connTemplateGet(family, proto, c0, c1, c2, c3, v0, v1, v2, v3, vport, now, true)
    : connInGet(family, proto, c0, c1, c2, c3, cport, v0, v1, v2, v3, vport, now, true);
  if (there != NIL) return E_EXIST;

  const i = connPlace(family, proto, c0, c1, c2, c3, cport, v0, v1, v2, v3, vport, d, load<u16>(ptr, 10),
    flags, state, timeout, now + <u32>remaining, now);
  if (i == NIL) return E_NOMEM;
  if (template != NIL) connControlAdd(i, template);
  return <i32>i;
}
