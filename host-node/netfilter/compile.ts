// compile.ts — turns the parsed ruleset (model.ts / ruleset.ts) into the core's chain blobs
// (assembly/netfilter/format.ts) and loads them: one blob per chain a restore touched, deletions
// for chains it removed, policies for built-in chains, all staged and committed as one
// transaction. Chain ids are stable across restores (name → id per family and table, built-in
// chains fixed); ids of deleted chains are reused once the deletion is committed. Recent-list,
// nfacct and ipset names get numeric ids the same way. The compiler also remembers, per chain id,
// the model's rules so a trace can print the rule it visited (trace.ts). A large chain that changed
// at a few places encodes only those, as a patch the core applies to its live copy (chain-memo.ts);
// loading into the core is load.ts.
// Pure: never calls the core (load.ts does) and never parses text.

import { ipvsWords, physdevHolds } from './ext-ipvs.js';
import type { Family, Hook, Match, Rule, TableName, Target, Words, IfaceMatch, PortRange, AddrType } from './model.js';
import { BUILTIN_CHAINS, type Ruleset, type Chain } from './ruleset.js';
import type { Touched } from './restore.js';
import { ChainMemo, MEMO_MIN_RULES } from './chain-memo.js';
import { andWords } from './addr.js';

// Loading compiled chains into a core lives in load.ts; its API is part of this module's.
export { IptLoadError, loadRestore, type IptCore, type StagedChain } from './load.js';
import { BlobArena, Staged } from './load.js';

// The blob format's numbers live in blob-format.ts; those other modules use are part of this API.
export { BUILTIN_IDS, HOOK_BY_INDEX, HOOK_INDEX, M, T, TABLE_BY_INDEX, TABLE_INDEX, builtinChainId } from './blob-format.js';
import {
  ADDRTYPES, BLOB_F_INDEX, BUILTIN_IDS, CTS, CT_STATUS_BIT, HDR_BYTES, INV, M, MAGIC, NAT_MAP_IPS, NAT_PERSISTENT,
  NAT_PROTO_SPECIFIED, NAT_RANDOM, NAT_RANDOM_FULLY, NOCT_PASS, SET_RETURN_NOMATCH, RECENT_DEST, RECENT_FLAG, RECENT_REAP, RECENT_TTL, REJECT_CODE,
  RULE_BYTES, T, TABLE_INDEX, VERSION, Words32, bswap, builtinChainId, copyWords, isFull, range,
} from './blob-format.js';

const isTouched = (t: Iterable<string> | Touched): t is Touched => (t as Touched).chains !== undefined;

/** A rule or chain the core cannot run. */
export class CompileError extends Error {
  constructor(readonly table: string, readonly chain: string, readonly rule: number, message: string, readonly word = '') {
    super(`${table}/${chain}${rule >= 0 ? ` rule ${rule + 1}` : ''}: ${message}`);
  }
}

/** Something in a rule the core cannot run, and the word of the rule's text that asks for it. */
class Unrunnable extends Error {
  constructor(readonly word: string, message: string) { super(message); }
}

const NO_RECENTS: readonly string[] = [];
const NO_ADDR: Words = [0, 0, 0, 0];

/** Where a chain id came from: for the trace and for messages. */
export interface ChainInfo { readonly family: Family; readonly table: TableName; readonly name: string; readonly rules: readonly Rule[] }

/** One restore, compiled: what to stage, then accept() or reject() once the core has answered. */
export interface CompiledRestore {
  readonly stage: readonly Staged[];
  readonly deletes: readonly Deleted[];
  readonly policies: readonly { readonly id: number; readonly policy: 0 | 1 }[];
  accept(): void;
  reject(): void;
}

interface Deleted { readonly id: number; readonly scope: string; readonly name: string }

/** `dispatch`: build the O(1) dispatch index for eligible runs (default true). */
export interface CompileOptions { dispatch?: boolean }

/** A rule's ops as encoded once (rules are shared between restores, so most compiles hit this). */
interface Encoded {
  readonly pool: Uint32Array;    // the words are pool[off, off + len)
  readonly off: number;
  readonly len: number;
  readonly target: number;       // word where the target op starts
  readonly jumpAt: number;       // word holding the jump's chain id, or -1
  readonly jump: string | null;  // the chain it names
}

type Ids = Map<string, Map<string, number>>;   // `family/table` → chain name → id

/** Name → id maps and per-chain facts, kept across restores. One compiler per core. */
export class IptCompiler {
  private readonly ids: Ids = new Map();
  private readonly free: number[] = [];
  private nextId = BUILTIN_IDS;
  // Per live chain id, the chain loaded and where (arrays by id: 60 000 chains take no map entry
  // and no ChainInfo object each).
  private readonly infoChain: (Chain | undefined)[] = [];
  private readonly infoTable: TableName[] = [];
  private readonly infoFamily: Family[] = [];
  private readonly chainRecents = new Map<number, readonly string[]>();
  private readonly recentIds = new Map<string, number>();
  private readonly recentRefs = new Map<string, number>();
  private readonly recentFree: number[] = [];
  private nextRecent = 0;
  private readonly namedIds = new Map<string, number>();   // `nfacct:NAME`, `set:NAME`
  private readonly namedNext = { nfacct: 0, set: 0 };
  private readonly encoded = new WeakMap<Rule, Encoded>();
  private readonly memo = new ChainMemo();
  private readonly ifaceWords = new Map<string, number[]>();
  private readonly words = new Words32();
  private readonly tmp = new Words32();
  private readonly recents: string[] = [];   // the recent lists the chain being compiled names
  private recs = new Uint32Array(3 * 1024);
  private pool = new Uint32Array(1 << 16);
  private poolUsed = 0;
  private readonly arena = new BlobArena();
  private sawRecent = false;
  private lastName = '';
  private lastLive: Map<string, number> | null = null;
  private lastId = 0;
  // Ids handed out by a compile not yet accepted: chain ids go into the live maps at once (one
  // lookup per new chain instead of three) and are listed here — map, name — so reject() can take
  // them out again.
  private pending: { added: (Map<string, number> | string)[]; recents: Map<string, number> } | null = null;

  /** The chain an id stands for (live after the last accepted restore). */
  chainInfo(id: number): ChainInfo | undefined {
    const c = this.infoChain[id];
    return c === undefined ? undefined : { family: this.infoFamily[id]!, table: this.infoTable[id]!, name: c.name, rules: c.rules };
  }

  /** The id of `table/name` in `family`, if it has one. */
  chainId(family: Family, table: TableName, name: string): number | undefined {
    if (BUILTIN_CHAINS[table].includes(name as Hook)) return builtinChainId(family, table, name as Hook);
    const scope = `${family}/${table}`;
    return this.ids.get(scope)?.get(name);
  }

  /** The id of recent list `name`, if some rule names it. */
  recentId(name: string): number | undefined {
    return this.recentIds.get(name) ?? this.pending?.recents.get(name);
  }

  /** The recent lists committed rules name, and their ids. */
  recentLists(): IterableIterator<[string, number]> {
    return this.recentIds.entries();
  }

  /** The id of nfacct object `name` (ids are never reused: counters outlive rules). */
  nfacctId(name: string): number { return this.named('nfacct', name); }
  /** Every nfacct object a rule has named, with its id. */
  nfacctIds(): Array<[name: string, id: number]> {
    const out: Array<[string, number]> = [];
    for (const [key, id] of this.namedIds) if (key.startsWith('nfacct:')) out.push([key.slice(7), id]);
    return out;
  }
  setId(name: string): number { return this.named('set', name); }

  private named(kind: 'nfacct' | 'set', name: string): number {
    const key = `${kind}:${name}`;
    const id = this.namedIds.get(key) ?? this.namedNext[kind]++;
    this.namedIds.set(key, id);
    return id;
  }

  private scopeOf(ids: Ids, scope: string): Map<string, number> {
    const m = ids.get(scope) ?? new Map<string, number>();
    ids.set(scope, m);
    return m;
  }

  private userId(live: Map<string, number>, name: string): number {
    // Jumps to one chain come in runs (every KUBE-SEP chain names KUBE-MARK-MASQ): the last answer
    // is kept for the next (valid within one compile: ids are only added during it).
    if (name === this.lastName && live === this.lastLive) return this.lastId;
    let id = live.get(name);
    if (id === undefined) {
      id = this.free.length > 0 ? this.free.pop()! : this.nextId++;
      live.set(name, id);
      this.pending!.added.push(live, name);
    }
    this.lastName = name;
    this.lastLive = live;
    this.lastId = id;
    return id;
  }

  private recentIdFor(name: string): number {
    const have = this.recentIds.get(name) ?? this.pending!.recents.get(name);
    if (have !== undefined) return have;
    const id = this.recentFree.length > 0 ? this.recentFree.pop()! : this.nextRecent++;
    if (id >= 1 << 16) throw new Error('more than 65536 recent lists');
    this.pending!.recents.set(name, id);
    return id;
  }

  /**
   * Compiles the chains of `rs` named in `touched` (`table/chain` strings, as parseRestore's
   * `touched`, or its `changed` lists; null = every chain of every table). A touched chain missing
   * from `rs` is deleted. Throws CompileError for a rule the core cannot run; nothing is reserved then.
   */
  compile(rs: Ruleset, touched: Iterable<string> | Touched | null, opts: CompileOptions = {}): CompiledRestore {
    if (this.pending) throw new Error('a compiled restore is still waiting for accept() or reject()');
    this.pending = { added: [], recents: new Map() };
    this.lastLive = null;
    this.arena.reset();
    const family = rs.family;
    const stage: Staged[] = [];
    const deletes: Deleted[] = [];
    const policies: { id: number; policy: 0 | 1 }[] = [];
    const dispatch = opts.dispatch ?? true;
    try {
      // Table and chain names, in order, each once (`touched` strings are `table/chain`).
      const lists = touched !== null && isTouched(touched) ? touched : null;
      const wantTables = (lists?.tables ?? []) as TableName[];
      const wantChains = (lists?.chains ?? []) as string[];
      // A Set of names (parseRestore's `touched`) has each once already.
      const seen = touched instanceof Set ? null : new Set<string>();
      const add = (t: TableName, n: string, key: string) => {
        if (seen !== null) {
          if (seen.has(key)) return;
          seen.add(key);
        }
        wantTables.push(t);
        wantChains.push(n);
      };
      if (touched === null) {
        for (const [tname, table] of rs.tables) for (const c of table.chains()) add(tname, c.name, `${tname}/${c.name}`);
        // Chains the core holds for this family that the ruleset no longer has.
        for (const [scope, m] of this.ids) {
          const [f, t] = scope.split('/') as [string, TableName];
          if (Number(f) !== family) continue;
          for (const n of m.keys()) if (!rs.table(t)?.chain(n)) add(t, n, `${t}/${n}`);
        }
      } else if (lists === null) {
        for (const s of touched as Iterable<string>) {
          const slash = s.indexOf('/');
          add(s.slice(0, slash) as TableName, s.slice(slash + 1), s);
        }
      }
      const scopes = new Map<TableName, { scope: string; live: Map<string, number> }>();
      for (let w = 0; w < wantTables.length; w++) {
        const tname = wantTables[w]!, name = wantChains[w]!;
        if (tname === 'security') {
          if (rs.table('security')?.chain(name)?.rules.length) throw new CompileError(tname, name, -1, 'the security table is not supported', '*security');
          continue;
        }
        const objs = lists?.chainObjs;
        const chain = objs !== undefined && w < objs.length ? objs[w] : rs.table(tname)?.chain(name);
        let sc = scopes.get(tname);
        if (sc === undefined) {
          const scope = `${family}/${tname}`;
          sc = { scope, live: this.scopeOf(this.ids, scope) };
          scopes.set(tname, sc);
        }
        const { scope, live } = sc;
        if (!chain) {
          const id = live.get(name);
          if (id !== undefined) {
            deletes.push({ id, scope, name });
            this.memo.drop(id);
          }
          continue;
        }
        // The chain's own name, not `name` (a slice of the `touched` string, which it would keep).
        const id = chain.builtin ? builtinChainId(family, tname, chain.hook!) : this.userId(live, chain.name);
        stage.push(this.compileChain(id, family, tname, chain, dispatch, live));
        if (chain.builtin) policies.push({ id, policy: chain.policy === 'DROP' ? 1 : 0 });
      }
    } catch (e) {
      this.reject();
      throw e;
    }
    return { stage, deletes, policies, accept: () => this.accept(stage, deletes), reject: () => this.reject() };
  }

  private accept(stage: readonly Staged[], deletes: readonly Deleted[]): void {
    const p = this.pending;
    if (!p) return;
    this.memo.accept();
    for (const [n, id] of p.recents) this.recentIds.set(n, id);
    const adjust = (names: readonly string[] | undefined, d: number) => {
      for (const n of names ?? []) this.recentRefs.set(n, (this.recentRefs.get(n) ?? 0) + d);
    };
    const infoChain = this.infoChain, infoTable = this.infoTable, infoFamily = this.infoFamily;
    while (infoChain.length < this.nextId) {   // kept packed: ids are handed out densely
      infoChain.push(undefined);
      infoTable.push('filter');
      infoFamily.push(4);
    }
    // An indexed loop: it runs once per restore, over 60 000 chains, mostly before it is optimized.
    for (let k = 0; k < stage.length; k++) {
      const s = stage[k]!;
      // Only chains whose rules name recent lists are kept here (kube-proxy: session affinity).
      if (this.chainRecents.size !== 0) {
        adjust(this.chainRecents.get(s.id), -1);
        this.chainRecents.delete(s.id);
      }
      if (s.recents.length !== 0) {
        adjust(s.recents, 1);
        this.chainRecents.set(s.id, s.recents);
      }
      infoChain[s.id] = s.chain;
      infoTable[s.id] = s.table;
      infoFamily[s.id] = s.family;
    }
    for (const d of deletes) {
      adjust(this.chainRecents.get(d.id), -1);
      this.chainRecents.delete(d.id);
      this.infoChain[d.id] = undefined;
      this.ids.get(d.scope)?.delete(d.name);
      this.free.push(d.id);
    }
    // A list no rule names any more is gone from the core too (its reference count hit zero).
    for (const [n, c] of this.recentRefs) {
      if (c > 0) continue;
      this.recentRefs.delete(n);
      const id = this.recentIds.get(n);
      if (id !== undefined) { this.recentIds.delete(n); this.recentFree.push(id); }
    }
    this.pending = null;
  }

  private reject(): void {
    const p = this.pending;
    this.memo.reject();
    if (!p) return;
    const added = p.added;
    for (let k = added.length - 2; k >= 0; k -= 2) {
      const m = added[k] as Map<string, number>, name = added[k + 1] as string;
      this.free.push(m.get(name)!);
      m.delete(name);
    }
    for (const id of p.recents.values()) this.recentFree.push(id);
    this.pending = null;
  }

  // ---- one chain -------------------------------------------------------------------------------
  private compileChain(id: number, family: Family, table: TableName, chain: Chain, dispatch: boolean, live: Map<string, number>): Staged {
    const ops = this.words;
    ops.n = 0;
    const rules = chain.rules;
    // Rules unchanged at both ends since this chain was last loaded stay in the core (a patch,
    // chain-memo.ts): only rules [head, end) are encoded and sent.
    const reuse = this.memo.reuse(id, rules);
    const head = reuse ? reuse.prefix : 0;
    const end = rules.length - (reuse ? reuse.suffix : 0);
    const n = end - head;
    const recs = this.recs.length >= n * 3 ? this.recs : (this.recs = new Uint32Array(n * 3 * 2));
    const recents = this.recents;
    recents.length = 0;
    // Encodings are remembered per rule only in large chains, whose middles a restore with several
    // changes re-encodes; the tens of thousands of two- and three-rule chains re-encode in less
    // time than a remembered encoding costs the garbage collector. Not on a chain's first load
    // either (a first restore's 20 000-rule KUBE-SERVICES): its rules are remembered from the next
    // restore that re-encodes them.
    const remember = rules.length >= MEMO_MIN_RULES && this.memo.has(id);
    let i = head;
    try {
      for (let k = 0; i < end; i++, k += 3) {
        const at = ops.n;
        if (!remember) {
          // Straight into the chain's words: no per-rule record, pool or view.
          const target = this.encodeInto(ops, rules[i]!, family, table, recents, live);
          recs[k] = at;
          recs[k + 1] = at + target;
          recs[k + 2] = ops.n;
          continue;
        }
        const e = this.encode(rules[i]!, family, table, recents, remember);
        const len = e.len;
        ops.room(len);
        const buf = ops.buf, pool = e.pool, off = e.off;
        for (let w = 0; w < len; w++) buf[at + w] = pool[off + w]!;
        if (e.jumpAt >= 0) buf[at + e.jumpAt] = this.userId(live, e.jump!);
        ops.n = at + len;
        recs[k] = at;
        recs[k + 1] = at + e.target;
        recs[k + 2] = at + len;
      }
    } catch (e) {
      if (e instanceof CompileError) throw e;
      throw new CompileError(table, chain.name, i, (e as Error).message, e instanceof Unrunnable ? e.word : '');
    }
    this.memo.keep(id, rules, recents.length === 0);
    const bytes = HDR_BYTES + n * RULE_BYTES + ops.n * 4;
    // One view of the chunk for every chain: tens of thousands of small chains would otherwise
    // cost a typed array each. The header is written as words, as the rule records and ops are.
    const at = this.arena.reserve(bytes);
    const a32 = this.arena.a32, h = at >> 2;
    a32[h] = MAGIC;
    a32[h + 1] = VERSION | (family << 16) | (TABLE_INDEX[table]! << 24);
    a32[h + 2] = dispatch ? BLOB_F_INDEX : 0;
    a32[h + 3] = n;
    a32[h + 4] = ops.n;
    a32[h + 5] = a32[h + 6] = a32[h + 7] = 0;
    copyWords(a32, h + (HDR_BYTES >> 2), recs, n * 3);
    copyWords(a32, (at + HDR_BYTES + n * RULE_BYTES) >> 2, ops.buf, ops.n);
    return new Staged(id, family, table, chain, this.arena.chunk, at, bytes, recents.length !== 0 ? recents.slice() : NO_RECENTS,
      reuse ? head : -1, reuse ? reuse.suffix : 0);
  }

  /** Appends `rule`'s ops to `w` (jump ids resolved); returns where its target op starts, relative
   *  to where the rule starts. */
  private encodeInto(w: Words32, rule: Rule, family: Family, table: TableName, recents: string[],
    live: Map<string, number>): number {
    const start = w.n;
    this.rule(w, family, rule, recents);
    const target = w.n - start;
    const t = rule.target;
    if (t && t.kind === 'jump') {
      if (BUILTIN_CHAINS[table].includes(t.chain as Hook)) throw new Unrunnable(t.chain, `cannot jump to built-in chain ${t.chain}`);
      w.op(t.goto ? T.GOTO : T.JUMP, 0, 1, this.userId(live, t.chain));
    } else if (t) {
      this.target(w, t);
    }
    return target;
  }

  /** A rule's ops; cached unless they name a recent list (whose id may change between restores). */
  private encode(rule: Rule, family: Family, table: TableName, recents: string[], remember: boolean): Encoded {
    if (remember) {
      const hit = this.encoded.get(rule);
      if (hit) return hit;
    }
    const w = this.tmp;
    w.n = 0;
    this.sawRecent = false;
    this.rule(w, family, rule, recents);
    const target = w.n;
    let jumpAt = -1, jump: string | null = null;
    const t = rule.target;
    if (t && t.kind === 'jump') {
      if (BUILTIN_CHAINS[table].includes(t.chain as Hook)) throw new Unrunnable(t.chain, `cannot jump to built-in chain ${t.chain}`);
      w.op(t.goto ? T.GOTO : T.JUMP, 0, 1, 0);
      jumpAt = w.n - 1;
      jump = t.chain;
    } else if (t) {
      this.target(w, t);
    }
    // Encodings are packed into shared pools: one small typed array per rule would cost more.
    if (this.poolUsed + w.n > this.pool.length) {
      this.pool = new Uint32Array(Math.max(1 << 16, w.n));
      this.poolUsed = 0;
    }
    const off = this.poolUsed;
    const pool = this.pool, src = w.buf;
    for (let k = 0; k < w.n; k++) pool[off + k] = src[k]!;
    this.poolUsed += w.n;
    const e: Encoded = { pool: this.pool, off, len: w.n, target, jumpAt, jump };
    if (remember && !this.sawRecent) this.encoded.set(rule, e);
    return e;
  }

  private op(w: Words32, kind: number, flags: number, args: readonly number[]): void {
    w.room(args.length + 1);
    w.buf[w.n++] = kind | (flags << 8) | ((args.length + 1) << 16);
    for (let i = 0; i < args.length; i++) w.buf[w.n++] = args[i]!;
  }

  private addr(w: Words32, kind: number, invert: boolean, addr: Words, mask: Words, which = -1, flags = 0): void {
    const pre = which >= 0 ? 1 : 0;
    w.room(9 + pre);
    const buf = w.buf;
    let n = w.n;
    buf[n++] = kind | (((invert ? INV : 0) | flags) << 8) | ((9 + pre) << 16);
    if (pre) buf[n++] = which;
    for (let i = 0; i < 4; i++) buf[n++] = bswap(addr[i]!);
    for (let i = 0; i < 4; i++) buf[n++] = bswap(mask[i]!);
    w.n = n;
  }

  private iface(w: Words32, kind: number, m: IfaceMatch): void {
    const key = `${m.name}${m.wildcard ? '+' : ''}`;
    let args = this.ifaceWords.get(key);
    if (!args) {
      // xtables_parse_interface(): the mask covers the name and its NUL, or only the name before `+`.
      const bytes = new Uint8Array(16), mask = new Uint8Array(16);
      const name = new TextEncoder().encode(m.name);
      if (name.length > 15) throw new Unrunnable(m.name, `interface name too long: ${m.name}`);
      bytes.set(name);
      mask.fill(0xff, 0, m.wildcard ? name.length : name.length + 1);
      const dv = new DataView(bytes.buffer), mv = new DataView(mask.buffer);
      args = [];
      for (let i = 0; i < 4; i++) args.push(dv.getUint32(i * 4, true));
      for (let i = 0; i < 4; i++) args.push(mv.getUint32(i * 4, true));
      this.ifaceWords.set(key, args);
    }
    this.op(w, kind, m.invert ? INV : 0, args);
  }

  private rule(w: Words32, family: Family, r: Rule, recents: string[]): void {
    if (r.src) this.addr(w, M.SRC, r.src.invert, r.src.addr, r.src.mask);
    if (r.dst) this.addr(w, M.DST, r.dst.invert, r.dst.addr, r.dst.mask);
    if (r.inIface) this.iface(w, M.IIF, r.inIface);
    if (r.outIface) this.iface(w, M.OIF, r.outIface);
    if (r.proto !== 0) w.op(M.PROTO, r.protoInvert ? INV : 0, 1, r.proto);
    if (r.fragment) w.op(M.FRAG, r.fragment.invert ? INV : 0, 0);
    const ms = r.matches;
    for (let i = 0; i < ms.length; i++) this.match(w, family, ms[i]!, recents);
  }

  private ports(w: Words32, sport: PortRange | null, sinv: boolean, dport: PortRange | null, dinv: boolean): void {
    // xt_tcpudp port_match(): a full range matches everything unless inverted (then nothing).
    if (sport && (!isFull(sport) || sinv)) w.op(M.SPORT, sinv ? INV : 0, 1, range(sport));
    if (dport && (!isFull(dport) || dinv)) w.op(M.DPORT, dinv ? INV : 0, 1, range(dport));
  }

  private match(w: Words32, family: Family, m: Match, recents: string[]): void {
    // A plain property read: `'invert' in m` costs as much again on matches of many shapes.
    const inv = (m as { readonly invert?: boolean }).invert ? INV : 0;
    switch (m.kind) {
      case 'comment': return;
      case 'tcp':
        this.ports(w, m.sport, m.sportInvert, m.dport, m.dportInvert);
        if (m.flags) w.op(M.TCPFLAGS, m.flags.invert ? INV : 0, 1, (m.flags.mask | (m.flags.comp << 8)) >>> 0);
        if (m.option) throw new Unrunnable('--tcp-option', '--tcp-option is not supported');
        return;
      case 'udp': return this.ports(w, m.sport, m.sportInvert, m.dport, m.dportInvert);
      case 'sctp':
        return this.ports(w, m.sport?.range ?? null, m.sport?.invert ?? false, m.dport?.range ?? null, m.dport?.invert ?? false);
      case 'icmp': case 'icmp6': {
        const any = m.kind === 'icmp' && m.type === 255 ? 1 : 0;
        return w.op(M.ICMP, inv, 2, (m.type | (m.codeMin << 8) | (m.codeMax << 16) | (any << 24)) >>> 0, family === 4 ? 1 : 58);
      }
      case 'multiport':
        return this.op(w, M.MULTIPORT, inv, [m.dir === 'src' ? 1 : m.dir === 'dst' ? 2 : 3, m.ports.length, ...m.ports.map(range)]);
      case 'addrtype': {
        const mask = (types: readonly AddrType[]) => types.reduce((a, t) => a | (1 << ADDRTYPES.indexOf(t)), 0);
        const flags = (m.srcInvert ? 1 : 0) | (m.dstInvert ? 2 : 0) | (m.limitIfaceIn ? 4 : 0) | (m.limitIfaceOut ? 8 : 0);
        return w.op(M.ADDRTYPE, 0, 2, (mask(m.srcTypes) | (mask(m.dstTypes) << 16)) >>> 0, flags);
      }
      case 'state': return w.op(M.CTSTATE, inv, 1, m.states.reduce((a, s) => a | CTS[s], 0));
      case 'conntrack': {
        // xt_conntrack's order; without a connection the other criteria answer what the state
        // test answered (it passed, or the rule has no state test and fails).
        const pass = m.state ? NOCT_PASS : 0;
        if (m.state) w.op(M.CTSTATE, m.state.invert ? INV : 0, 1, m.state.states.reduce((a, s) => a | CTS[s], 0));
        if (m.dir) w.op(M.CT_DIR, pass, 1, m.dir === 'ORIGINAL' ? 0 : 1);
        // The model keeps these addresses as written (iptables prints them so); the kernel compares
        // under the mask, so the core is given them masked.
        [m.origSrc, m.origDst, m.replSrc, m.replDst].forEach((x, i) => { if (x) this.addr(w, M.CT_ADDR, x.invert, andWords(x.addr, x.mask), x.mask, i, pass); });
        if (m.proto) w.op(M.CT_PROTO, (m.proto.invert ? INV : 0) | pass, 1, m.proto.proto);
        [m.origSrcPort, m.origDstPort, m.replSrcPort, m.replDstPort].forEach((x, i) => {
          if (x) w.op(M.CT_PORT, (x.invert ? INV : 0) | pass, 2, i, range(x.range));
        });
        if (m.status) w.op(M.CT_STATUS, (m.status.invert ? INV : 0) | pass, 1, m.status.statuses.reduce((a, s) => a | CT_STATUS_BIT[s], 0));
        if (m.expire) throw new Unrunnable('--ctexpire', '--ctexpire is not supported');
        return;
      }
      case 'mark': return w.op(M.MARK, inv, 2, m.value >>> 0, m.mask >>> 0);
      case 'connmark': return w.op(M.CONNMARK, inv, 2, m.value >>> 0, m.mask >>> 0);
      case 'statistic':
        if (m.mode === 'random') return w.op(M.RANDOM, inv, 1, m.probabilityRaw >>> 0);
        // libxt_statistic: every is stored less one, the counter starts at every - packet.
        return w.op(M.NTH, inv, 3, m.every - 1, m.every - 1 - m.packet, 0);
      case 'recent': {
        const flags = RECENT_FLAG[m.op] | (m.rttl ? RECENT_TTL : 0) | (m.reap ? RECENT_REAP : 0) | (m.side === 'dest' ? RECENT_DEST : 0);
        const mask = family === 4 ? [m.mask[0]!, 0, 0, 0] : m.mask;
        this.op(w, M.RECENT, inv, [this.recentIdFor(m.name), flags, m.seconds, m.hitcount, ...mask.map(bswap)]);
        recents.push(m.name);
        this.sawRecent = true;
        return;
      }
      case 'set': {
        const flags = inv | (m.returnNomatch ? SET_RETURN_NOMATCH : 0);
        return w.op(M.SET, flags, 3, this.setId(m.name), m.dirs.reduce((a, d, i) => a | (d === 'dst' ? 1 << i : 0), 0), m.dirs.length);
      }
      case 'nfacct': return w.op(M.NFACCT, 0, 1, this.nfacctId(m.name));
      case 'limit': return w.op(M.LIMIT, 0, 3, m.avg, m.burst, 0);
      case 'physdev': return w.op(M.PHYSDEV, 0, 1, physdevHolds(m));
      case 'ipvs': return this.op(w, M.IPVS, 0, ipvsWords(m, family, bswap));
    }
  }

  private nat(w: Words32, kind: number, to: { addrMin: Words | null; addrMax: Words | null; ports: PortRange | null }, extra: number): void {
    const min = to.addrMin ?? NO_ADDR, max = to.addrMax ?? min;
    const flags = extra | (to.addrMin ? NAT_MAP_IPS : 0) | (to.ports ? NAT_PROTO_SPECIFIED : 0);
    // Written in place: a restore has one DNAT rule per endpoint (40,000 at 20k Services).
    w.room(11);
    const buf = w.buf;
    let n = w.n;
    buf[n++] = kind | (11 << 16);
    buf[n++] = flags;
    for (let i = 0; i < 4; i++) buf[n++] = bswap(min[i]!);
    for (let i = 0; i < 4; i++) buf[n++] = bswap(max[i]!);
    buf[n++] = to.ports ? range(to.ports) : 0;
    w.n = n;
  }

  private target(w: Words32, t: Target): void {
    switch (t.kind) {
      case 'ACCEPT': return w.op(T.ACCEPT, 0, 0);
      case 'DROP': return w.op(T.DROP, 0, 0);
      case 'RETURN': return w.op(T.RETURN, 0, 0);
      case 'QUEUE': throw new Unrunnable('QUEUE', 'QUEUE is not supported');
      case 'jump': throw new Error('jumps are encoded by encode()');
      case 'REJECT': return w.op(T.REJECT, 0, 1, REJECT_CODE[t.with]!);
      case 'DNAT': return this.nat(w, T.DNAT, t.to, (t.random ? NAT_RANDOM : 0) | (t.persistent ? NAT_PERSISTENT : 0));
      case 'SNAT':
        return this.nat(w, T.SNAT, t.to, (t.random ? NAT_RANDOM : 0) | (t.randomFully ? NAT_RANDOM_FULLY : 0) | (t.persistent ? NAT_PERSISTENT : 0));
      case 'MASQUERADE': case 'REDIRECT': {
        const flags = (t.ports ? NAT_PROTO_SPECIFIED : 0) | (t.random ? NAT_RANDOM : 0) | (t.kind === 'MASQUERADE' && t.randomFully ? NAT_RANDOM_FULLY : 0);
        return w.op(t.kind === 'MASQUERADE' ? T.MASQUERADE : T.REDIRECT, 0, 2, flags, t.ports ? range(t.ports) : 0);
      }
      case 'MARK': return w.op(T.MARK, 0, 2, t.value >>> 0, t.mask >>> 0);
      case 'CONNMARK':
        if (t.mode === 'set') return this.op(w, T.CONNMARK, 0, [0, t.value >>> 0, t.mask >>> 0, 0]);
        return this.op(w, T.CONNMARK, 0, [t.mode === 'save' ? 1 : 2, 0, t.ctmask >>> 0, t.nfmask >>> 0]);
      case 'LOG': return w.op(T.LOG, 0, 0);
      case 'NFLOG': return w.op(T.NFLOG, 0, 1, t.group);
      case 'CT': return w.op(T.NOTRACK, 0, 0);
    }
  }
}
