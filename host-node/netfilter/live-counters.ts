// live-counters.ts — the core's per-rule packet/byte counters seen from the rule model: read for
// the listings (`-L -v`, `-S -v`), and carried across a restore as libiptc's commit does: kept
// for the rules a restore left alone, from the text (`-c`) or zero for the rules it flushed,
// added or zeroed; and the nfacct objects' counters (`nfacct list`). Counter records are 16
// bytes per rule (packets, bytes: u64 little endian), the chain's policy after its rules (ABI.md
// iptCounters). Never compiles, never parses.
import type { IptCompiler } from './compile.js';
import type { CounterReset } from './commands.js';
import { ZERO_COUNTERS, type Counters, type Family, type TableName } from './model.js';
import type { Ruleset } from './ruleset.js';
import type { Touched } from './restore.js';

/** Counters of rule `index` of `chain` (index -1: the chain's policy); undefined = use the model's. */
export type CounterSource = (table: TableName, chain: string, index: number) => Counters | undefined;

/** Counters of rule `index` of `chain` (-1: its policy) from `src`, `own` where it has none. */
export function countersOf(src: CounterSource | undefined, table: TableName, chain: string, index: number, own: Counters): Counters {
  return (src && src(table, chain, index)) ?? own;
}

/**
 * The counters one edited chain holds after a restore: its rules' records as the core holds them.
 * (A built-in chain's policy counters need no keeping: a block that changes a table sets them all,
 * reset() writes them.)
 */
export interface KeptCounters {
  readonly table: TableName;
  readonly chain: string;
  readonly values: Uint8Array;
}

export interface CounterCore {
  iptRuleCount(id: number): number;
  iptCounters(id: number): number;
  iptNfacctPtr(): number;
  iptNfacctCount(): number;
}

export class LiveCounters {
  /** `view` gives a DataView of the core's memory as it is now (memory may have grown). */
  constructor(
    private readonly core: () => CounterCore,
    private readonly compiler: IptCompiler,
    private readonly view: () => DataView,
  ) {}

  /** The nfacct objects rules have named, with the packets and bytes counted (as `nfacct list` shows them). */
  nfacct(): Array<{ name: string; packets: number; bytes: number }> {
    const core = this.core();
    const base = core.iptNfacctPtr(), count = core.iptNfacctCount();
    const dv = this.view();
    return this.compiler.nfacctIds().sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, id]) => {
      if (id >= count) return { name, packets: 0, bytes: 0 };
      const at = base + id * 16;
      return { name, packets: Number(dv.getBigUint64(at, true)), bytes: Number(dv.getBigUint64(at + 8, true)) };
    });
  }

  /** Per-rule counters from the core, for the renderers. */
  source(family: Family): CounterSource {
    return (table: TableName, chain: string, index: number) => {
      const at = this.records(family, table, chain);
      if (!at) return undefined;
      const k = index < 0 || index >= at.n ? at.n : index;   // the chain's end: policy counter
      const dv = this.view();
      return { packets: dv.getBigUint64(at.ptr + k * 16, true), bytes: dv.getBigUint64(at.ptr + k * 16 + 8, true) };
    };
  }

  /**
   * Sets the live counters of the rules a restore flushed or zeroed to what the text gave them
   * (`-c`, else zero): iptables-restore keeps counters only of rules it did not flush, so a chain
   * rewritten with the same rules keeps its compiled code here, not its counts. Policy counters stay.
   */
  reset(family: Family, rs: Ruleset, resets: readonly CounterReset[]): void {
    if (resets.length === 0) return;
    const dv = this.view();
    for (const r of resets) {
      const table = rs.table(r.table);
      const one = r.chain === null ? undefined : table?.chain(r.chain);
      if (!table || (r.chain !== null && !one)) continue;
      for (const c of one ? [one] : table.chains()) {
        const at = this.records(family, r.table, c.name);
        if (!at || at.n !== c.rules.length) continue;
        if (r.policy && c.builtin) {
          dv.setBigUint64(at.ptr + at.n * 16, r.policy.packets, true);
          dv.setBigUint64(at.ptr + at.n * 16 + 8, r.policy.bytes, true);
        }
        if (r.rule === -2) continue;
        const from = Math.max(0, r.rule), to = r.rule < 0 ? at.n : Math.min(at.n, r.rule + 1);
        // A chain read whole from text without `-c` says so in its source: no rule object to read
        // (KUBE-SERVICES' 20,000 would cost an edit milliseconds of cache misses).
        let zero = c.source?.zero === true;
        if (!zero) {
          zero = true;
          for (let k = from; k < to && zero; k++) zero = c.rules[k]!.counters === ZERO_COUNTERS;
        }
        // Without -c every counter is zero: one fill (KUBE-SERVICES has a rule per Service port).
        if (zero) new Uint8Array(dv.buffer, at.ptr + from * 16, (to - from) * 16).fill(0);
        else {
          for (let k = from; k < to; k++) {
            const { packets, bytes } = c.rules[k]!.counters;
            dv.setBigUint64(at.ptr + k * 16, packets, true);
            dv.setBigUint64(at.ptr + k * 16 + 8, bytes, true);
          }
        }
      }
    }
  }

  /**
   * Before a restore commits: the counters the edited chains will hold. libiptc's commit keeps the
   * counters of the rules a restore did not touch in a chain it did not flush (appends, inserts or
   * deletes elsewhere in it): here the rules equal at the chain's head and tail keep theirs, every
   * other rule takes what the text gave it (`-c`, else zero). Flushed chains are reset() after.
   */
  kept(family: Family, before: Ruleset, after: Ruleset, changed: Touched, resets: readonly CounterReset[]): KeptCounters[] {
    const whole = new Set<TableName>();
    const flushed = new Map<TableName, Set<string>>();
    for (const r of resets) {
      if (r.chain === null) whole.add(r.table);
      else if (r.rule === -1) (flushed.get(r.table) ?? flushed.set(r.table, new Set()).get(r.table)!).add(r.chain);
    }
    const out: KeptCounters[] = [];
    const dv = this.view();
    for (let k = 0; k < changed.chains.length; k++) {
      const table = changed.tables[k]!, name = changed.chains[k]!;
      if (whole.has(table) || flushed.get(table)?.has(name)) continue;
      const old = before.table(table)?.chain(name), now = after.table(table)?.chain(name);
      if (!old || !now || old.rules.length === 0 || now.rules.length === 0) continue;
      const at = this.records(family, table, name);
      if (!at || at.n !== old.rules.length) continue;
      const a = old.rules, b = now.rules;
      let head = 0;
      while (head < a.length && head < b.length && a[head] === b[head]) head++;
      let tail = 0;
      while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
      // The records of the equal ends copied as bytes (KUBE-SERVICES keeps 20,000 of them when
      // one Service is added), the rules between from their text.
      const values = new Uint8Array(16 * b.length);
      const mem = new Uint8Array(dv.buffer);
      values.set(mem.subarray(at.ptr, at.ptr + 16 * head), 0);
      values.set(mem.subarray(at.ptr + 16 * (a.length - tail), at.ptr + 16 * a.length), 16 * (b.length - tail));
      const mid = new DataView(values.buffer);
      for (let i = head; i < b.length - tail; i++) {
        const c = b[i]!.counters;
        if (c === ZERO_COUNTERS) continue;
        mid.setBigUint64(16 * i, c.packets, true);
        mid.setBigUint64(16 * i + 8, c.bytes, true);
      }
      out.push({ table, chain: name, values });
    }
    return out;
  }

  /** After the commit: writes what kept() read. */
  restoreKept(family: Family, kept: readonly KeptCounters[]): void {
    if (kept.length === 0) return;
    const dv = this.view();
    for (const { table, chain, values } of kept) {
      const at = this.records(family, table, chain);
      if (!at || 16 * at.n !== values.length) continue;
      new Uint8Array(dv.buffer).set(values, at.ptr);
    }
  }

  /** Where a compiled chain's counter records start, and its rule count; undefined when not compiled. */
  private records(family: Family, table: TableName, chain: string): { ptr: number; n: number } | undefined {
    const id = this.compiler.chainId(family, table, chain);
    if (id === undefined) return undefined;
    const n = this.core().iptRuleCount(id);
    const ptr = this.core().iptCounters(id);
    return n < 0 || ptr === 0 ? undefined : { ptr, n };
  }
}
