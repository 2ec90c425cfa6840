// ipset/model.ts — the host's model of the sets, with the kernel's rules for every command
// (net/netfilter/ipset/ip_set_core.c and the type modules): create (with -exist for an identical
// set), destroy and rename refused while rules reference a set, swap of same-type sets, add/del/test
// with -exist, expiry, maxelem and bitmap ranges. It keeps what the text forms need (names, options,
// comments, expiry times, the kernel's set index order) and validates a whole command before
// changing anything; every accepted change is also handed to a Sink (the core, table.ts). Pure
// apart from the sink; time comes in as `now` (ms).
import { type TypeDef, DEFAULT_HASHSIZE, MIN_HASHSIZE, DEFAULT_MAXELEM, DEFAULT_BUCKETSIZE, MAX_TIMEOUT } from './types.js';
import { type CreateOpts, parseNumber } from './command.js';
import { type Element, type Entry, type Cmd, parseEntry, elementKey, isNullElement, isInvalidZero, formatElement } from './element.js';
import { formatAddr } from './addr.js';
import { IpsetError, kernel, usage, syntax, fromKernel, MSG } from './errors.js';

const UTF8 = new TextEncoder();

export interface Member {
  el: Element;
  /** Expiry time in ms, or null: permanent (or a set without timeouts). */
  expires: number | null;
  nomatch: boolean;
  comment: string | null;
}

/** Extension values an add carries. */
export interface AddExt {
  timeout: number | null;
  packets: bigint | null;
  bytes: bigint | null;
  comment: string | null;
  nomatch: boolean;
}

export class IpSet {
  members = new Map<string, Member>();
  constructor(
    public name: string,
    public def: TypeDef,
    public family: 4 | 6,
    /** The kernel's index: listing order, lowest free index on create. */
    public index: number,
    public hashsize: number,
    public maxelem: number,
    public timeout: number | null,
    public counters: boolean,
    public comment: boolean,
    public bucketsize: number,
    public initval: number,
    public range: [number, number] | null,
  ) {}

  clone(): IpSet {
    const c = new IpSet(this.name, this.def, this.family, this.index, this.hashsize, this.maxelem, this.timeout,
      this.counters, this.comment, this.bucketsize, this.initval, this.range);
    c.members = new Map(this.members);
    return c;
  }

  live(m: Member, now: number): boolean {
    return m.expires === null || m.expires >= now;
  }

  /** Members present at `now`. */
  present(now: number): Member[] {
    return [...this.members.values()].filter((m) => this.live(m, now));
  }

  /** Drops expired members (the kernel's gc). */
  purge(now: number): void {
    for (const [k, m] of this.members) if (!this.live(m, now)) this.members.delete(k);
  }
}

/** Where accepted changes go (the core). Each call may throw an IpsetError. */
export interface Sink {
  create(s: IpSet): void;
  destroy(s: IpSet): void;
  flush(s: IpSet): void;
  rename(s: IpSet, to: string): void;
  swap(a: IpSet, b: IpSet): void;
  add(s: IpSet, el: Element, ext: AddExt, exist: boolean): void;
  del(s: IpSet, el: Element, exist: boolean): void;
  test(s: IpSet, el: Element, nomatch: boolean): boolean;
}

/** References to a set from rules (iptables `-m set`), which protect it. */
export type RefCounter = (name: string) => number;

// kernel ip_set_hash_gen.h create: the hash size rounds up to a power of two, at least 64; the
// bucket size is 2..12 and even.
function roundHashsize(n: number): number {
  let h = MIN_HASHSIZE;
  while (h < n) h *= 2;
  return h;
}

function roundBucketsize(n: number | null): number {
  if (n === null) return DEFAULT_BUCKETSIZE;
  if (n < 2) return 2;
  if (n > DEFAULT_BUCKETSIZE) return DEFAULT_BUCKETSIZE;
  return n % 2 ? n + 1 : n;
}

/**
 * The most elements of one add or del walked here. Current kernels walk any range: the hash
 * types' uadt stops every IPSET_MAX_RANGE (2^14) elements with ERANGE and ip_set_core's call_ad()
 * resumes it ("Rework long task execution when adding/deleting entries", Linux 6.2; seen on 6.18:
 * a 20,481-address add is taken, a del of 1.0.0.0-255.255.255.255 runs for minutes). The kernels
 * before it, from 5.15, returned ERANGE to ipset once a range passed 2^20 elements; so does
 * svcplane, whose sets live in the heap, when its walk gets there (an error of an element before
 * it comes first, as in the kernel's walk).
 */
const WALK_LIMIT = 1 << 20;

/**
 * A bitmap:port entry's ports: the first as written (a reversed range `90-80` is written from
 * 90; a service name counts as the lower end) and the range's ends.
 */
function portEnds(entry: string, ent: Entry): { written: number; lo: number; hi: number } {
  let lo = Infinity, hi = -Infinity;
  for (const el of ent.elements()) {
    if (el.port < lo) lo = el.port;
    if (el.port > hi) hi = el.port;
  }
  const first = /^(?:[a-z]+:)?(\d+)/.exec(entry);
  return { written: first ? Number(first[1]) : lo, lo, hi };
}

export class Model {
  sets = new Map<string, IpSet>();
  /** The indices the sets hold, and one below which every index is taken (create's search starts there). */
  private used = new Set<number>();
  private lowFree = 0;

  constructor(private readonly refs: RefCounter, private readonly initval: () => number) {}

  /** A copy whose sets can be changed without touching this one (sets are copied on write). */
  fork(): Model {
    const m = new Model(this.refs, this.initval);
    m.sets = new Map(this.sets);
    m.used = new Set(this.used);
    m.lowFree = this.lowFree;
    m.copied = new Set();
    return m;
  }
  private copied: Set<string> | null = null;

  get(name: string): IpSet {
    const s = this.sets.get(name);
    if (!s) throw kernel(MSG.noSet, name);
    return s;
  }

  /** The set of `name`, copied first when this is a fork that has not yet changed it. */
  private writable(name: string): IpSet {
    const s = this.get(name);
    if (this.copied && !this.copied.has(name)) {
      const c = s.clone();
      this.sets.set(name, c);
      this.copied.add(name);
      return c;
    }
    return s;
  }

  /** Sets in the kernel's listing order (by index). */
  ordered(): IpSet[] {
    return [...this.sets.values()].sort((a, b) => a.index - b.index);
  }

  // ip_set_create(): the lowest free index. Kept as it goes: searching all sets on every create
  // made a restore of 20,000 sets take 52 s.
  private freeIndex(): number {
    while (this.used.has(this.lowFree)) this.lowFree++;
    return this.lowFree;
  }

  create(name: string, def: TypeDef, o: CreateOpts, exist: boolean, sink: Sink): void {
    const old = this.sets.get(name);
    const hs = def.hash ? roundHashsize(o.hashsize ?? DEFAULT_HASHSIZE) : 0;
    if (hs > 2 ** 31) throw kernel(MSG.noMemory, String(o.hashsize));
    const s = new IpSet(name, def, def.hash ? o.family : 4, old ? old.index : this.freeIndex(), hs,
      def.hash ? (o.maxelem ?? DEFAULT_MAXELEM) : 0, o.timeout, o.counters, o.comment,
      roundBucketsize(o.bucketsize), def.hash ? (o.initval ?? this.initval()) >>> 0 : 0, o.range);
    if (old) {
      // ip_set_create(): -exist accepts a set of the same type, family and parameters (same_set()).
      const same = old.def === def && old.family === s.family && old.maxelem === s.maxelem &&
        old.timeout === s.timeout && old.counters === s.counters && old.comment === s.comment &&
        (def.hash || (old.range![0] === s.range![0] && old.range![1] === s.range![1]));
      if (exist && same) return;
      throw kernel(MSG.setExists, name);
    }
    sink.create(s);
    this.sets.set(name, s);
    this.used.add(s.index);
    this.copied?.add(name);
  }

  destroy(name: string | null, sink: Sink): void {
    const targets = name === null ? this.ordered() : [this.get(name)];
    for (const s of targets) if (this.refs(s.name) > 0) throw kernel(MSG.destroyInUse, s.name);
    for (const s of targets) {
      sink.destroy(s);
      this.sets.delete(s.name);
      this.used.delete(s.index);
      if (s.index < this.lowFree) this.lowFree = s.index;
      this.copied?.delete(s.name);
    }
  }

  flush(name: string | null, sink: Sink): void {
    const names = name === null ? this.ordered().map((s) => s.name) : [this.get(name).name];
    for (const n of names) {
      const s = this.writable(n);
      sink.flush(s);
      s.members.clear();
    }
  }

  rename(from: string, to: string, sink: Sink): void {
    this.get(from);
    if (this.refs(from) > 0) throw kernel(MSG.renameInUse, from);
    if (this.sets.has(to)) throw kernel(MSG.renameExists, to);
    const c = this.writable(from);
    sink.rename(c, to);
    this.sets.delete(from);
    c.name = to;
    this.sets.set(to, c);
    this.copied?.add(to);
  }

  // ip_set_swap(): the names (and references) stay, everything else changes places.
  swap(a: string, b: string, sink: Sink): void {
    const sa = this.get(a);
    const sb = this.sets.get(b);
    if (!sb) throw kernel(MSG.swapSecond, b);
    if (sa.def !== sb.def || sa.family !== sb.family) throw kernel(MSG.swapType, b);
    sink.swap(sa, sb);
    const na = sb.clone(), nb = sa.clone();
    na.name = a; na.index = sa.index;
    nb.name = b; nb.index = sb.index;
    this.sets.set(a, na);
    this.sets.set(b, nb);
    this.copied?.add(a);
    this.copied?.add(b);
  }

  /** add/del/test options of set `s`, as ipset's parser reads them. */
  parseExt(s: IpSet, cmd: Cmd, rest: readonly string[]): AddExt {
    const x: AddExt = { timeout: null, packets: null, bytes: null, comment: null, nomatch: false };
    const value = (i: number, opt: string) => {
      // An empty word ("") is no argument either.
      if (i >= rest.length || rest[i] === '') throw usage(`Missing mandatory argument of option \`${opt}'`, opt);
      return rest[i]!;
    };
    for (let i = 0; i < rest.length; i++) {
      const w = rest[i]!;
      const allowed = cmd === 'add' || (cmd === 'test' && w === 'nomatch');
      if (!allowed || !['timeout', 'packets', 'bytes', 'comment', 'nomatch'].includes(w) ||
        (w === 'nomatch' && !s.def.nomatch)) {
        if (cmd === 'add' && ['skbmark', 'skbprio', 'skbqueue'].includes(w)) {
          throw syntax(`option \`${w}' is not supported by svcplane`, w);
        }
        throw usage(`Unknown argument: \`${w}'`, w);
      }
      if (w === 'nomatch') { x.nomatch = true; continue; }
      const v = value(++i, w);
      if (w === 'timeout') x.timeout = parseNumber(v, 0, MAX_TIMEOUT);
      else if (w === 'comment') {
        // lib/parse.c ipset_parse_comment(): no '"' (save quotes the comment), at most 255 bytes.
        if (v.includes('"')) throw syntax('" character is not permitted in comments', v);
        if (UTF8.encode(v).length > 255) throw syntax('Comment is longer than the maximum allowed 255 characters', v);
        x.comment = v;
      } else {
        if (!/^\d+$/.test(v)) throw syntax(`'${v}' is invalid as number`, v);
        const n = BigInt(v);
        if (n >= 2n ** 64n) throw syntax(`'${v}' is out of range 0-18446744073709551615`, v);
        if (w === 'packets') x.packets = n; else x.bytes = n;
      }
    }
    return x;
  }

  // ip_set_get_extensions(): an extension the set was created without is refused.
  private checkExt(s: IpSet, x: AddExt): void {
    if (x.timeout !== null && s.timeout === null) throw kernel(MSG.noTimeout, 'timeout');
    if ((x.packets !== null || x.bytes !== null) && !s.counters) throw kernel(MSG.noCounters, 'packets');
    if (x.comment !== null && !s.comment) throw kernel(MSG.noComment, 'comment');
  }

  add(name: string, entry: string, rest: readonly string[], exist: boolean, now: number, sink: Sink): void {
    const s0 = this.get(name);
    // The kernel reads the extensions (ip_set_get_extensions()) before it judges the element's
    // values (a prefix length, hash_net4_uadt()); bitmap_port_uadt() checks the port as written
    // against the range before them, the range's other end after them.
    let ent: Entry | undefined;
    let refused: IpsetError | null = null;
    try {
      ent = parseEntry(s0.def, s0.family, entry, 'add');
    } catch (e) {
      if (!(e instanceof IpsetError && fromKernel(e))) throw e;
      refused = e;
    }
    const x = this.parseExt(s0, 'add', rest);
    const ends = ent && !s0.def.hash ? portEnds(entry, ent) : null;
    if (ends) this.checkPort(s0, ends.written);
    this.checkExt(s0, x);
    if (!ent) throw refused!;
    if (ends) for (const p of [ends.lo, ends.hi]) this.checkPort(s0, p);
    // Validate every element before anything changes (all or nothing).
    const todo: Element[] = [];
    const keys: string[] = [];
    let fresh = 0;
    let held = s0.members.size;
    let purge = false;
    let walked = 0;
    for (const el of ent.elements()) {
      if (++walked > WALK_LIMIT) throw kernel(MSG.tooMany, entry);
      this.checkPort(s0, el.port);
      this.refuseZero(s0, el, entry);
      const key = elementKey(el);
      keys.push(key);
      const m = s0.members.get(key);
      if (m && s0.live(m, now)) {
        if (!exist) throw kernel(MSG.exist, entry);
      } else if (!m) {
        fresh++;
        if (s0.def.hash && held + fresh > s0.maxelem) {
          // mtype_add(): a full set first drops its expired elements.
          if (!purge && s0.timeout !== null) {
            purge = true;
            held = s0.present(now).length;
          }
          if (held + fresh > s0.maxelem) throw kernel(MSG.full, entry);
        }
      }
      todo.push(el);
    }
    const s = this.writable(name);
    if (purge) s.purge(now);
    for (let k = 0; k < todo.length; k++) {
      const el = todo[k]!;
      sink.add(s, el, x, exist);
      const t = x.timeout ?? s.timeout;
      s.members.set(keys[k]!, {
        el, nomatch: x.nomatch, comment: x.comment,
        expires: s.timeout !== null && t !== null && t > 0 ? now + t * 1000 : null,
      });
    }
    this.grow(s);
  }

  del(name: string, entry: string, rest: readonly string[], exist: boolean, now: number, sink: Sink): void {
    const s0 = this.get(name);
    const ent = parseEntry(s0.def, s0.family, entry, 'del');
    this.parseExt(s0, 'del', rest);
    const ends = s0.def.hash ? null : portEnds(entry, ent);
    if (ends) for (const p of [ends.written, ends.lo, ends.hi]) this.checkPort(s0, p);
    const todo: Element[] = [];
    let walked = 0;
    for (const el of ent.elements()) {
      if (++walked > WALK_LIMIT) throw kernel(MSG.tooMany, entry);
      this.checkPort(s0, el.port);
      this.refuseZero(s0, el, entry);
      const m = s0.members.get(elementKey(el));
      if (!m || !s0.live(m, now)) {
        if (!exist) throw kernel(MSG.notExist, entry);
      }
      if (m) todo.push(el);
    }
    const s = this.writable(name);
    for (const el of todo) {
      const k = elementKey(el);
      const m = s.members.get(k);
      if (!m) continue;
      sink.del(s, el, exist);
      s.members.delete(k);
    }
  }

  /** `ipset test`: whether the entry is in the set, and the text ipset echoes for it. */
  test(name: string, entry: string, rest: readonly string[], sink: Sink): { found: boolean; text: string } {
    const s = this.get(name);
    let text: string;
    let el: Element;
    const slash = entry.indexOf('/');
    const dash = entry.indexOf('-');
    const host = s.family === 4 ? 32 : 128;
    if (s.def.name === 'hash:ip' && s.family === 4 && dash > 0) {
      // hash_ip4_uadt() tests the range's first address as written, before it reads the other end.
      parseEntry(s.def, s.family, entry, 'add');
      el = [...parseEntry(s.def, s.family, entry.slice(0, dash), 'test').elements()][0]!;
      const last = [...parseEntry(s.def, s.family, entry.slice(dash + 1), 'test').elements()][0]!;
      text = `${formatAddr(el.a)}-${formatAddr(last.a)}`;
    } else if (s.def.name === 'hash:ip' && slash > 0) {
      // hash_ip4_uadt(): a test with /cidr tests the address as given.
      const one = parseEntry(s.def, s.family, entry.slice(0, slash), 'test');
      parseEntry(s.def, s.family, entry, 'add');
      el = [...one.elements()][0]!;
      const cidr = entry.slice(slash);
      text = `${formatAddr(el.a)}${cidr === `/${host}` ? '' : cidr}`;
    } else {
      const ent = parseEntry(s.def, s.family, entry, 'test');
      el = [...ent.elements()][0]!;
      text = ent.echo ?? formatElement(s.def, el);
    }
    const x = this.parseExt(s, 'test', rest);
    // A net part of /0, or hash:ip's null address, is simply not there.
    if ((s.def.nomatch && el.cidr === 0) || isNullElement(s.def, el)) return { found: false, text };
    return { found: sink.test(s, el, x.nomatch), text };
  }

  // An all-zero address an add or del may not name: hash:ip's null element, hash:ip,port's EINVAL.
  private refuseZero(s: IpSet, el: Element, entry: string): void {
    if (isNullElement(s.def, el)) throw kernel(MSG.nullElem, entry);
    if (isInvalidZero(s.def, el)) throw kernel(MSG.invalid, entry);
  }

  private checkPort(s: IpSet, port: number): void {
    if (s.range && (port < s.range[0] || port > s.range[1])) throw kernel(MSG.range, String(port));
  }

  // The kernel doubles the table when a bucket overflows; this estimates when (about six elements
  // per bucket on average with bucketsize 12, measured). Only the `hashsize` shown depends on it.
  private grow(s: IpSet): void {
    if (!s.def.hash) return;
    while (s.members.size > s.hashsize * (s.bucketsize / 2) && s.hashsize < 2 ** 31) s.hashsize *= 2;
  }
}

