// stats.ts — the core's counters: one u64 per verdict, per reason and per conntrack event. The
// host reads them as a block (statsPtr/statsCount) and names them from host-node/core/abi.ts.
// Never allocates; increments are plain stores.
import { VERDICT_COUNT, REASON_COUNT } from "./verdict";

export const S_VERDICT: u32 = 0;                          // + verdict
export const S_REASON: u32 = S_VERDICT + VERDICT_COUNT;   // + reason (index 0 unused)
export const S_PACKETS: u32 = S_REASON + REASON_COUNT;
export const S_BYTES: u32 = S_PACKETS + 1;
export const S_CT_NEW: u32 = S_BYTES + 1;                 // connections created
export const S_CT_HIT: u32 = S_CT_NEW + 1;                // packets matched to an existing flow
export const S_CT_RELATED: u32 = S_CT_HIT + 1;            // ICMP errors matched to a flow
export const S_DNAT: u32 = S_CT_RELATED + 1;              // new flows DNATed
export const S_SNAT: u32 = S_DNAT + 1;                    // new flows source-NATed (masquerade)
export const S_REAPED: u32 = S_SNAT + 1;                  // expired flows removed by the reaper
export const S_BATCHES: u32 = S_REAPED + 1;
export const STATS_COUNT: u32 = S_BATCHES + 1;

export const statsBlock: usize = heap.alloc(<usize>STATS_COUNT << 3);
memory.fill(statsBlock, 0, <usize>STATS_COUNT << 3);

@inline export function bump(i: u32): void {
  const p = statsBlock + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + 1);
}

@inline export function add(i: u32, n: u64): void {
  const p = statsBlock + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + n);
}

export function statsReset(): void {
  memory.fill(statsBlock, 0, <usize>STATS_COUNT << 3);
}
