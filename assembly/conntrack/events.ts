// conntrack/events.ts — the flow table's events for a listener, as `conntrack -E` hears the
// kernel's: a connection stored (NEW, once its first packet is accepted: the kernel's confirm),
// one that changed (UPDATE: its first reply seen, assured, a new TCP state) and one removed
// (DESTROY: its time up, deleted, flushed, reconciled or dropped early), each a
// record (record.ts) in a ring the host drains. Off until the host turns it on, and then one
// record copy per event; a full ring keeps what it has and counts what it could not take (the
// kernel's ENOBUFS to a listener that reads too slowly). The ring is allocated on the first
// enable only, never on the packet path.
import { Tuple, PROTO_TCP } from "../flow";
import { entryAt, E_STATUS, E_PROTO, E_TCPSTATE, CT_SEEN_REPLY, CT_ASSURED } from "./entry";
import { CT_RECORD_SIZE, writeRecord } from "./record";
import { allocFits, replaceBlock } from "../alloc";

export const CT_EVENT_NEW: u8 = 1;
export const CT_EVENT_DESTROY: u8 = 2;
export const CT_EVENT_UPDATE: u8 = 3;

// A slot: u8 kind, u8 what changed (CT_EVENT_STATE), 6 bytes zero, then the record (its lifetime
// counted at the event).
/** An UPDATE's TCP state changed (the kernel's IPCT_PROTOINFO: conntrack -E prints the state then). */
export const CT_EVENT_STATE: u8 = 1;
export const CT_EVENT_SLOT: u32 = 8 + CT_RECORD_SIZE;
export const CT_EVENT_SLOTS_MAX: u32 = 1 << 16;

/** Whether events are recorded (read on the packet path before anything else is done). */
export let ctEventsOn = false;

let ring: usize = 0;
let ringSlots: u32 = 0;
let slots: u32 = 0;
// Events written and read so far (wrapping counters: their difference is what waits).
let written: u32 = 0;
let read: u32 = 0;
let lost: u32 = 0;
// The last time the table was given (an insert, a batch's reap): a DESTROY's lifetime counts from
// it, as the host's deletions, flushes and reconciles come without a time of their own.
let clock: u32 = 0;

const evOrig: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));
const evReply: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

/** Notes the table's time (ctInsert, ctReap): what a DESTROY without its own time reads. */
// @ts-ignore: decorator
@inline export function ctEventsClock(now: u32): void {
  clock = now;
}

/**
 * Starts recording into a ring of `n` slots (1 … CT_EVENT_SLOTS_MAX), empty; false for a bad
 * `n`, or a ring the memory cannot hold (recording goes on as it was). The ring's memory is kept
 * for the next enable (grown if that asks for more: the new ring is taken before the old one is
 * given back, so recording never writes into freed memory).
 */
export function ctEventsEnable(n: u32): bool {
  if (n == 0 || n > CT_EVENT_SLOTS_MAX) return false;
  if (n > ringSlots) {
    if (!allocFits(<u64>n * CT_EVENT_SLOT)) return false;
    ring = replaceBlock(ring, <usize>n * CT_EVENT_SLOT);
    ringSlots = n;
  }
  slots = n;
  written = 0;
  read = 0;
  lost = 0;
  ctEventsOn = true;
  return true;
}

/** Stops recording; events not read are dropped. */
export function ctEventsDisable(): void {
  ctEventsOn = false;
  written = 0;
  read = 0;
}

/** Records event `kind` of connection `index` (still in the table), its lifetime from `now`. */
export function ctEventAt(kind: u8, index: u32, now: u32): void {
  ctEventOf(kind, entryAt(index), now);
}

/** ctEventAt() of the connection at entry address `e`; `changed`: CT_EVENT_STATE or 0. */
export function ctEventOf(kind: u8, e: usize, now: u32, changed: u8 = CT_EVENT_STATE): void {
  if (written - read >= slots) {
    lost++;
    return;
  }
  const p = ring + <usize>(written % slots) * CT_EVENT_SLOT;
  store<u64>(p, <u64>kind | (<u64>changed << 8));
  writeRecord(e, p + 8, now, evOrig, evReply);
  written++;
}

/**
 * What an UPDATE reports a change of (the kernel's IPCT_REPLY, IPCT_ASSURED, IPCT_PROTOINFO):
 * the reply-seen and assured bits, and the TCP state.
 */
// @ts-ignore: decorator
@inline export function ctEventState(e: usize): u32 {
  const s = <u32>(load<u8>(e + E_STATUS) & (CT_SEEN_REPLY | CT_ASSURED));
  return load<u8>(e + E_PROTO) == PROTO_TCP ? s | (<u32>load<u8>(e + E_TCPSTATE) << 8) : s;
}

/** A DESTROY of connection `index`, about to be removed, at the table's last known time. */
export function ctEventDestroy(index: u32): void {
  ctEventAt(CT_EVENT_DESTROY, index, clock);
}

/**
 * Copies up to `max` waiting events, oldest first, to `out` (CT_EVENT_SLOT bytes each) and
 * returns how many; they are then read.
 */
export function ctEventsRead(out: usize, max: u32): u32 {
  let n: u32 = 0;
  while (n < max && read != written) {
    memory.copy(out + <usize>n * CT_EVENT_SLOT, ring + <usize>(read % slots) * CT_EVENT_SLOT, CT_EVENT_SLOT);
    read++;
    n++;
  }
  return n;
}

/** Events the ring could not take since recording started. */
export function ctEventsLost(): u32 {
  return lost;
}
