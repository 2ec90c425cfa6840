// ruleset.ts — the parsed state: a Ruleset holds tables, a Table holds chains, a Chain holds
// rules. Every object is immutable; a restore builds the next Ruleset aside (draft.ts) sharing
// every chain it did not touch, so the previous Ruleset stays valid and a failed restore leaves
// it untouched. Tables keep their chains in a two-level map (a large shared base plus a small
// per-version delta) so a restore that changes ten chains of 60 000 copies ten entries, not the
// table. Never parses text and never prints (restore.ts, save.ts, list.ts).

import type { CounterReset } from './commands.js';
import type { Counters, Family, Hook, Policy, Rule, TableName } from './model.js';
import { ZERO_COUNTERS } from './model.js';

/** Built-in chains per table, in hook order, as Linux registers them (iptable_raw.c,
 *  iptable_mangle.c, iptable_nat.c, iptable_filter.c, iptable_security.c valid_hooks). */
export const BUILTIN_CHAINS: Readonly<Record<TableName, readonly Hook[]>> = {
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

export const HOOK_BIT: Readonly<Record<Hook, number>> = {
  PREROUTING: 1 << 0, INPUT: 1 << 1, FORWARD: 1 << 2, OUTPUT: 1 << 3, POSTROUTING: 1 << 4,
};

export const TABLE_NAMES: readonly TableName[] = ['raw', 'mangle', 'nat', 'filter', 'security'];

export function isTableName(s: string): s is TableName {
  return (TABLE_NAMES as readonly string[]).includes(s);
}

export function builtinHook(table: TableName, chain: string): Hook | null {
  return (BUILTIN_CHAINS[table] as readonly string[]).includes(chain) ? (chain as Hook) : null;
}

/** One chain. Built-in chains have a hook and a policy; user chains have neither. */
export interface Chain {
  readonly name: string;
  readonly builtin: boolean;
  readonly hook: Hook | null;
  /** ACCEPT or DROP for built-in chains, null for user chains. */
  readonly policy: Policy | null;
  /** Policy counters (built-in chains; always zero for user chains). */
  readonly counters: Counters;
  readonly rules: readonly Rule[];
  /**
   * How restore text declared the chain, to render it back the same way: null = never
   * declared (a built-in chain the text did not mention), '-' = `:NAME - […]` (user chains, or a
   * built-in whose policy was left alone), 'policy' = `:NAME ACCEPT|DROP […]` or -P.
   */
  readonly declared: '-' | 'policy' | null;
  /** Position of the chain's rules in source-order output (the restore line that started them). */
  readonly seq: number;
  /** The rules' texts laid out in one string (large chains written by restore text only). */
  readonly source?: ChainSource | null;
}

/**
 * Where a large chain's rule texts lie in the restore text that wrote them: rule k's text is
 * `text.slice(at[2k], at[2k + 1])`, equal to `rules[k].text`. A restore that rewrites the chain
 * compares each new line with that slice instead of with 20 000 rule objects scattered over the
 * heap: one sequential read instead of several cache misses per line. The chain keeps that
 * restore text alive until a later restore rewrites it (bounded by the few latest restore texts).
 * `zero`: every rule has zero counters.
 */
export interface ChainSource {
  readonly text: string;
  readonly at: Uint32Array;
  readonly zero: boolean;
}

/** Chains with fewer rules get no ChainSource (their rule objects are few and cheap to compare). */
export const SOURCE_MIN_RULES = 64;

const NO_CHANGES: ReadonlyMap<string, null> = new Map<string, null>();

/**
 * An immutable string-keyed map stored as a shared base plus a small delta (null = deleted).
 * `with()` copies only the delta; when the delta outgrows ~8·√n it is folded into a new base,
 * so the cost per change stays small on average however large the map is.
 */
export class LayeredMap<V> {
  private constructor(
    private readonly base: ReadonlyMap<string, V>,
    private readonly delta: ReadonlyMap<string, V | null>,
    readonly size: number,
  ) {}

  static of<V>(entries: Iterable<readonly [string, V]> = []): LayeredMap<V> {
    const base = new Map<string, V>(entries as Iterable<[string, V]>);
    return new LayeredMap(base, new Map(), base.size);
  }

  get(key: string): V | undefined {
    const d = this.delta.get(key);
    if (d !== undefined) return d === null ? undefined : d;
    return this.base.get(key);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Entries in order: the base's (with overrides in place), then keys new in the delta. */
  *entries(): IterableIterator<[string, V]> {
    for (const [k, v] of this.base) {
      const d = this.delta.get(k);
      if (d === undefined) yield [k, v];
      else if (d !== null) yield [k, d];
    }
    for (const [k, v] of this.delta) if (v !== null && !this.base.has(k)) yield [k, v];
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  /** Each value in entries() order, without an entry array or a generator step per entry. */
  forEachValue(each: (v: V) => void): void {
    const delta = this.delta;
    if (delta.size === 0) {
      this.base.forEach((v) => each(v));
      return;
    }
    this.base.forEach((v, k) => {
      const d = delta.get(k);
      if (d === undefined) each(v);
      else if (d !== null) each(d);
    });
    delta.forEach((v, k) => {
      if (v !== null && !this.base.has(k)) each(v);
    });
  }

  /** A delta of `n` entries is too large to keep beside this base: fold it in. */
  private outgrows(n: number): boolean {
    return n > Math.max(256, 8 * Math.sqrt(this.base.size));
  }

  /** A new map with `changes` applied (null deletes). */
  with(changes: ReadonlyMap<string, V | null>): LayeredMap<V> {
    if (changes.size === 0) return this;
    if (this.outgrows(this.delta.size + changes.size)) return this.folded(changes);
    const delta = new Map(this.delta);
    let size = this.size;
    for (const [k, v] of changes) {
      const present = delta.has(k) ? delta.get(k) !== null : this.base.has(k);
      if (v === null) {
        if (present) size--;
        if (this.base.has(k)) delta.set(k, null);
        else delta.delete(k);
      } else {
        if (!present) size++;
        delta.set(k, v);
      }
    }
    const next = new LayeredMap(this.base, delta, size);
    return this.outgrows(delta.size) ? next.folded(NO_CHANGES) : next;
  }

  /**
   * with(), for a map of changes the caller gives up: when the change is large enough to fold,
   * `changes` itself becomes the new base (completed with the entries it does not override), so
   * a full restore's 60 000 changes are not copied into one more map. The entries then come in
   * another order than with() gives: only for maps read by key.
   */
  withOwned(changes: Map<string, V | null>): LayeredMap<V> {
    if (changes.size === 0) return this;
    if (!this.outgrows(this.delta.size + changes.size)) return this.with(changes);
    this.delta.forEach((v, k) => {
      if (!changes.has(k)) changes.set(k, v);
    });
    this.base.forEach((v, k) => {
      if (!changes.has(k)) changes.set(k, v);
    });
    changes.forEach((v, k) => {
      if (v === null) changes.delete(k);
    });
    return new LayeredMap(changes as Map<string, V>, new Map(), changes.size);
  }

  /** with(), folded straight into a new base (a large change: a full restore's 60 000 chains, or a
   *  delta grown too large); the same entries in the same order as with() gives. forEach makes no
   *  entry arrays. */
  private folded(changes: ReadonlyMap<string, V | null>): LayeredMap<V> {
    const base = new Map<string, V>();
    const old = this.base, delta = this.delta;
    old.forEach((v, k) => {
      let x = changes.get(k);
      if (x === undefined) x = delta.get(k);
      if (x === undefined) base.set(k, v);
      else if (x !== null) base.set(k, x);
    });
    delta.forEach((v, k) => {
      if (old.has(k)) return;
      let x = changes.get(k);
      if (x === undefined) x = v;
      if (x !== null) base.set(k, x);
    });
    changes.forEach((v, k) => {
      if (v !== null && !old.has(k) && !delta.has(k)) base.set(k, v);
    });
    return new LayeredMap(base, new Map(), base.size);
  }
}

/**
 * A restore block (`*table` line through its `COMMIT`, as written) and the options it was read
 * with. A table carries it only when the block is idempotent on that table: a replacing block
 * (its result depends on the text and the previous built-in policies and counters, which it
 * leaves as they are on a second run), or a --noflush block that only declares chains and appends
 * to user chains it declared (flushed) before.
 */
export interface BlockMemo {
  readonly text: string;
  /** Lines the block spans (its `*table` and COMMIT lines included). */
  readonly lines: number;
  readonly noflush: boolean;
  readonly counters: boolean;
  readonly strict: boolean;
  /** The counter resets reading the block gave (passing it over gives them again). */
  readonly resets: readonly CounterReset[];
}

/** One table of a ruleset. */
export class Table {
  /** @internal chains by name: built-ins first (hook order), then user chains in creation order. */
  readonly chainMap: LayeredMap<Chain>;
  /** @internal number of rules (jumps and gotos) naming each chain. */
  readonly refMap: LayeredMap<number>;
  /** @internal per chain, a superset of the hooks it can be reached from (graph.ts). */
  readonly hookMap: LayeredMap<number>;
  /**
   * @internal The restore block that made this table, when applying it again to this table would
   * give this table back (restore.ts BlockMemo); set once, right after the table is made.
   */
  block: BlockMemo | null = null;

  constructor(
    readonly name: TableName,
    readonly family: Family,
    chainMap: LayeredMap<Chain>,
    refMap: LayeredMap<number>,
    hookMap: LayeredMap<number>,
  ) {
    this.chainMap = chainMap;
    this.refMap = refMap;
    this.hookMap = hookMap;
  }

  chain(name: string): Chain | undefined {
    return this.chainMap.get(name);
  }

  /** Built-in chains in hook order, then user chains in the order they were created. */
  chains(): IterableIterator<Chain> {
    return this.chainMap.values();
  }

  /** chains(), as a callback per chain (cheaper over 60,000). */
  forEachChain(each: (c: Chain) => void): void {
    this.chainMap.forEachValue(each);
  }

  /** How many rules in this table jump or go to `chain` (the `-L` "references" count). */
  references(chain: string): number {
    return this.refMap.get(chain) ?? 0;
  }

  get size(): number {
    return this.chainMap.size;
  }
}

function builtinChain(hook: Hook): Chain {
  return { name: hook, builtin: true, hook, policy: 'ACCEPT', counters: ZERO_COUNTERS, rules: [], declared: null, seq: 0 };
}

/** A table with only its built-in chains, policy ACCEPT (what the kernel starts with). */
export function emptyTable(name: TableName, family: Family): Table {
  const hooks = BUILTIN_CHAINS[name];
  return new Table(
    name,
    family,
    LayeredMap.of(hooks.map((h) => [h, builtinChain(h)] as const)),
    LayeredMap.of(),
    LayeredMap.of(hooks.map((h) => [h, HOOK_BIT[h]] as const)),
  );
}

/**
 * Rules parsed from identical text are identical, so parsed rules are kept by their text and
 * reused (kube-proxy rewrites KUBE-SERVICES whole on every sync with mostly unchanged lines).
 * Two generations: a rule found in the old one moves to the current one, and the current one
 * becomes the old one when it fills or every `span` restores, so a text no restore has read for
 * two spans is dropped. The size bound alone would let a proxy whose endpoints keep moving hold
 * every rule text it ever read, up to `limit` twice over (~1.3 KB per sync at 300 Services).
 */
export class RuleCache {
  private cur = new Map<string, Rule>();
  private old = new Map<string, Rule>();
  private restores = 0;
  constructor(readonly limit = 1 << 18, readonly span = 32) {}

  get(text: string): Rule | undefined {
    const hit = this.cur.get(text);
    if (hit !== undefined) return hit;
    const prev = this.old.get(text);
    if (prev !== undefined) this.set(text, prev);
    return prev;
  }

  set(text: string, rule: Rule): void {
    if (this.cur.size >= this.limit) this.rotate();
    this.cur.set(text, rule);
  }

  /** A restore begins. */
  restoring(): void {
    if (++this.restores >= this.span) this.rotate();
  }

  /** Texts held (one in both generations counts twice). */
  get size(): number {
    return this.cur.size + this.old.size;
  }

  private rotate(): void {
    this.old = this.cur;
    this.cur = new Map();
    this.restores = 0;
  }
}

/** The whole parsed state for one address family. */
export class Ruleset {
  constructor(
    readonly family: Family,
    /** Tables present, in the order they first appeared. */
    readonly tables: ReadonlyMap<TableName, Table>,
    /** @internal last sequence number handed out (orders rule blocks in source output). */
    readonly seq: number,
    /** @internal parsed-rule cache shared by the rulesets derived from this one. */
    readonly cache: RuleCache,
  ) {}

  table(name: TableName): Table | undefined {
    return this.tables.get(name);
  }

  static empty(family: Family = 4): Ruleset {
    return new Ruleset(family, new Map(), 0, new RuleCache());
  }
}

/** The ruleset has at most `limit` chains in all (a fresh node's base rules). */
export function hasFewChains(rs: Ruleset, limit: number): boolean {
  let n = 0;
  for (const t of rs.tables.values()) {
    n += t.size;
    if (n > limit) return false;
  }
  return true;
}
