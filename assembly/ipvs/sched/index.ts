// ipvs/sched/index.ts — the one dispatch over the fourteen schedulers, as ip_vs_sched.c's table of
// hooks: state size, init_service, add_dest / del_dest / upd_dest, schedule, plus a side-effect-free
// peek for the trace and the periodic tick lblc/lblcr need. A scheduler sees only its per-service
// state block and the destination list (first id, linked through dest.ts), plus the packet's Flow
// and the service's flags. A plain switch: no function pointers, so the packet path has no indirect
// calls. State blocks are allocated by the caller (service.ts) on the control path.
import { Flow } from "../../flow";
import {
  SCHED_RR, SCHED_WRR, SCHED_LC, SCHED_WLC, SCHED_SED, SCHED_NQ, SCHED_FO, SCHED_OVF, SCHED_LBLC,
  SCHED_LBLCR, SCHED_DH, SCHED_SH, SCHED_MH, SCHED_TWOS, SVC_F_SCHED_FALLBACK, NIL,
  sysctl, SYS_LBLC_EXPIRATION, SYS_LBLCR_EXPIRATION,
} from "../defs";
import { RR_STATE_BYTES, rrInit, rrDelDest, rrSchedule } from "./rr";
import { WRR_STATE_BYTES, wrrInit, wrrDestChanged, wrrSchedule } from "./wrr";
import { lcSchedule } from "./lc";
import { wlcSchedule } from "./wlc";
import { sedSchedule } from "./sed";
import { nqSchedule } from "./nq";
import { foSchedule } from "./fo";
import { ovfSchedule } from "./ovf";
import { lblcStateBytes, lblcInit, lblcSchedule, lblcPurgeDest } from "./lblc";
import { lblcrStateBytes, lblcrInit, lblcrSchedule, lblcrPurgeDest } from "./lblcr";
import { DH_STATE_BYTES, dhReassign, dhSchedule } from "./dh";
import { SH_STATE_BYTES, shReassign, shSchedule } from "./sh";
import { mhStateBytes, mhInit, mhDestChanged, mhSchedule, MH_DEFAULT_SIZE, mhTabBits } from "./mh";
import { twosSchedule } from "./twos";
import { cacheCheckExpire } from "./addrcache";

const STATELESS_BYTES: usize = 8;

/** Bytes of the per-service state block; 0 for a bad scheduler id or mh table size. */
export function schedStateBytes(sched: u8, param: u32): usize {
  switch (sched) {
    case SCHED_RR: return RR_STATE_BYTES;
    case SCHED_WRR: return WRR_STATE_BYTES;
    case SCHED_LBLC: return lblcStateBytes();
    case SCHED_LBLCR: return lblcrStateBytes();
    case SCHED_DH: return DH_STATE_BYTES;
    case SCHED_SH: return SH_STATE_BYTES;
    case SCHED_MH: {
      const m = param == 0 ? MH_DEFAULT_SIZE : param;
      return mhTabBits(m) == 0 ? 0 : mhStateBytes(m);
    }
    case SCHED_LC: case SCHED_WLC: case SCHED_SED: case SCHED_NQ: case SCHED_FO: case SCHED_OVF:
    case SCHED_TWOS:
      return STATELESS_BYTES;
  }
  return 0;
}

// init_service.
export function schedInit(sched: u8, state: usize, first: u32, num: u32, param: u32): void {
  switch (sched) {
    case SCHED_RR: rrInit(state); break;
    case SCHED_WRR: wrrInit(state, first); break;
    case SCHED_LBLC: lblcInit(state); break;
    case SCHED_LBLCR: lblcrInit(state); break;
    case SCHED_DH: dhReassign(state, first); break;
    case SCHED_SH: shReassign(state, first); break;
    case SCHED_MH: mhInit(state, param == 0 ? MH_DEFAULT_SIZE : param, first, num); break;
  }
}

// add_dest.
export function schedDestAdded(sched: u8, state: usize, first: u32, num: u32): void {
  switch (sched) {
    case SCHED_WRR: wrrDestChanged(state, first); break;
    case SCHED_DH: dhReassign(state, first); break;
    case SCHED_SH: shReassign(state, first); break;
    case SCHED_MH: mhDestChanged(state, first, num); break;
  }
}

// upd_dest (dh has none: it ignores weights).
export function schedDestUpdated(sched: u8, state: usize, first: u32, num: u32): void {
  switch (sched) {
    case SCHED_WRR: wrrDestChanged(state, first); break;
    case SCHED_SH: shReassign(state, first); break;
    case SCHED_MH: mhDestChanged(state, first, num); break;
  }
}

// del_dest: `d` has been unlinked; `prev` preceded it (NIL: it was first).
export function schedDestRemoved(sched: u8, state: usize, first: u32, num: u32, d: u32, prev: u32): void {
  switch (sched) {
    case SCHED_RR: rrDelDest(state, d, prev); break;
    case SCHED_WRR: wrrDestChanged(state, first); break;
    case SCHED_DH: dhReassign(state, first); break;
    case SCHED_SH: shReassign(state, first); break;
    case SCHED_MH: mhDestChanged(state, first, num); break;
    case SCHED_LBLC: lblcPurgeDest(state, d); break;
    case SCHED_LBLCR: lblcrPurgeDest(state, d); break;
  }
}

// schedule: a destination id, or NIL when none is available.
export function schedule(sched: u8, state: usize, first: u32, f: Flow, svcFlags: u32, now: u32): u32 {
  switch (sched) {
    case SCHED_RR: return rrSchedule(state, first);
    case SCHED_WRR: return wrrSchedule(state, first);
    case SCHED_LC: return lcSchedule(first);
    case SCHED_WLC: return wlcSchedule(first);
    case SCHED_SED: return sedSchedule(first);
    case SCHED_NQ: return nqSchedule(first);
    case SCHED_FO: return foSchedule(first);
    case SCHED_OVF: return ovfSchedule(first);
    case SCHED_LBLC: return lblcSchedule(state, first, f, now, false);
    case SCHED_LBLCR: return lblcrSchedule(state, first, f, now, sysctl(SYS_LBLCR_EXPIRATION), false);
    case SCHED_DH: return dhSchedule(state, f);
    case SCHED_SH: return shSchedule(state, f, svcFlags);
    case SCHED_MH: return mhSchedule(state, f, svcFlags, (svcFlags & SVC_F_SCHED_FALLBACK) != 0);
    case SCHED_TWOS: return twosSchedule(first);
  }
  return NIL;
}

// A copy of rr/wrr state to run a choice on without moving the real cursor.
const peekState: usize = heap.alloc(16);

/** What `schedule` would return now, changing nothing (twos: NIL — see twosOdds). */
export function schedPeek(sched: u8, state: usize, first: u32, f: Flow, svcFlags: u32, now: u32): u32 {
  switch (sched) {
    case SCHED_RR:
      memory.copy(peekState, state, RR_STATE_BYTES);
      return rrSchedule(peekState, first);
    case SCHED_WRR:
      memory.copy(peekState, state, WRR_STATE_BYTES);
      return wrrSchedule(peekState, first);
    case SCHED_LBLC: return lblcSchedule(state, first, f, now, true);
    case SCHED_LBLCR: return lblcrSchedule(state, first, f, now, sysctl(SYS_LBLCR_EXPIRATION), true);
    case SCHED_TWOS: return NIL;
  }
  return schedule(sched, state, first, f, svcFlags, now);
}

/** Periodic work (lblc/lblcr garbage collection). Returns cache entries removed. */
export function schedTick(sched: u8, state: usize, now: u32): u32 {
  if (sched == SCHED_LBLC) return cacheCheckExpire(state, now, sysctl(SYS_LBLC_EXPIRATION));
  if (sched == SCHED_LBLCR) return cacheCheckExpire(state, now, sysctl(SYS_LBLCR_EXPIRATION));
  return 0;
}
