// fast.ts — a fast path for the rule texts kube-proxy writes by the hundred thousand: one scan
// over the text (no word array, no per-rule parser object), the common option sequences
// recognised directly, and the immutable parts rules share (jump targets, comments, port matches,
// addresses, probabilities, accounting objects) interned so 160 000 rules cost a fraction of the memory. Values are
// still parsed and checked by the same extension definitions the general parser (rule.ts) uses,
// so the Rule built here is exactly the one parseRuleText() would build. Anything outside the
// recognised shapes (quoting with escapes, `!` before a match option, long option names, options
// given twice, other matches or targets, any value the definitions refuse) returns null and the
// general parser reads the text, with its error messages. Never throws, never reads the clock.

import { parseHostMask, plainIPv4, prefixMask } from './addr.js';
import { L4_MATCH_DEFS } from './ext-l4.js';
import { MATCH_DEFS } from './ext-match.js';
import { STATE_MATCH_DEFS } from './ext-state.js';
import { TARGET_DEFS, VERDICTS } from './ext-target.js';
import { checkFinal, findOption, type ExtDef, type ParseEnv } from './ext.js';
import { ZERO_COUNTERS, type AddrMatch, type Family, type Match, type PortRange, type Rule, type Target, type Words } from './model.js';

const SPACE = 32;
const QUOTE = 34;
const BACKSLASH = 92;
const MAX_NAME = 28; // rule.ts MAX_NAME

type MatchDef = ExtDef<unknown, Match>;
type TargetDef = ExtDef<unknown, Target>;

const TCP = L4_MATCH_DEFS.get('tcp')!;
const UDP = L4_MATCH_DEFS.get('udp')!;
const COMMENT = MATCH_DEFS.get('comment')!;
const STATISTIC = STATE_MATCH_DEFS.get('statistic')!;
const NFACCT = MATCH_DEFS.get('nfacct')!;
const DNAT = TARGET_DEFS.get('DNAT') as TargetDef;

/**
 * The last few shared immutable objects of one kind, by key, looked up newest first. kube-proxy
 * repeats values close together (the two rules of a KUBE-SEP chain share their comment, a
 * service's KUBE-SERVICES and masquerade rules its address, and every few rules jump to
 * KUBE-MARK-MASQ), so a handful of slots compared with === catches nearly all the sharing at no
 * hashing cost, and memory stays bounded. `depth` slots are searched: most lookups miss (a new
 * comment, address or chain), and each slot compared costs a string compare.
 */
class Recent<V> {
  private readonly keys: string[] = ['', '', '', '', '', '', '', ''];
  private readonly vals: (V | null)[] = [null, null, null, null, null, null, null, null];
  private next = 0;
  constructor(private readonly depth = 2) {}
  get(key: string): V | null {
    const keys = this.keys;
    for (let k = 1, i = (this.next - 1) & 7; k <= this.depth; k++, i = (i - 1) & 7) if (keys[i] === key) return this.vals[i];
    return null;
  }
  set(key: string, v: V): V {
    this.keys[this.next] = key;
    this.vals[this.next] = v;
    this.next = (this.next + 1) & 7;
    return v;
  }
}

// Jumps to KUBE-MARK-MASQ recur a few jumps apart, past other chains named once each.
const jumps = new Recent<Target>(8);
const verdicts = new Map<string, Target>();
const comments = new Recent<Match>();
const ports: (Match & { kind: 'tcp' | 'udp' })[] = [];
const nets = [new Recent<AddrMatch>(), new Recent<AddrMatch>()];
const hosts = new Recent<AddrMatch>();
const probabilities = new Recent<Match>();
const accounts = new Recent<Match>();
/** The last IPv4 host address read (`-s` of a KUBE-SEP rule), for its DNAT rule's next line. */
let lastHost: Words | null = null;
/** The single-port range of the last DNAT destination read. */
let lastPort: PortRange | null = null;
/** The last few match lists built: rules next to each other often have equal ones (a service's
 *  KUBE-SERVICES and masquerade rules, the endpoints' KUBE-SEP rules), which then share one. */
const lists: (readonly Match[])[] = [];

// The scanner's state for one rule (module-level: parsing is synchronous and not re-entered): the
// rule is text[from, end), where text may be the whole restore text the rule was cut from (a flat
// string: a slice of it would cost an indirection on every character read). Every search stays
// within end.
let text = '';
let end = 0;
let pos = 0;
let wordStart = 0;
let wordEnd = 0;
let wordQuoted = false;

/** Reads the next word into wordStart/wordEnd; false at the end, or (with pos = -1) when the
 *  word needs the general lexer (escapes, a quote inside a word, a tab). */
function next(): boolean {
  // Locals in the loops: `text` and `pos` live in the module's context, a load or store each use.
  const s = text, n = end;
  let p = pos;
  while (p < n && s.charCodeAt(p) === SPACE) p++;
  pos = p;
  if (p >= n) return false;
  if (s.charCodeAt(p) === QUOTE) {
    let close = p + 1;
    for (let c = 0; close < n && (c = s.charCodeAt(close)) !== QUOTE; close++) if (c === BACKSLASH) return bail();
    if (close >= n || close === p + 1) return bail();
    if (close + 1 < n && s.charCodeAt(close + 1) !== SPACE) return bail();
    wordStart = p + 1;
    wordEnd = close;
    wordQuoted = true;
    pos = close + 1;
    return true;
  }
  const from = p;
  while (p < n) {
    const c = s.charCodeAt(p);
    if (c === SPACE) break;
    if (c === QUOTE || c < SPACE || c === BACKSLASH) return bail();
    p++;
  }
  wordStart = from;
  wordEnd = p;
  wordQuoted = false;
  pos = p;
  return true;
}

function bail(): false {
  pos = -1;
  return false;
}

function word(): string {
  return text.slice(wordStart, wordEnd);
}

/** The word is exactly `s` (compared in place, no slice). */
function is(s: string): boolean {
  return wordEnd - wordStart === s.length && text.startsWith(s, wordStart);
}

/** The match `def` builds from its one option `name` given `value`, shared with one built
 *  recently from the same value; null when the definition has no such option. */
function singleOption(def: MatchDef, cache: Recent<Match>, name: string, value: string, env: ParseEnv): Match | null {
  const hit = cache.get(value);
  if (hit) return hit;
  const s = def.init(env);
  const bit = apply(def, s, name, value, env);
  if (!bit) return null;
  def.check?.(s, bit, env);
  checkFinal(def, bit);
  return cache.set(value, def.build(s, env));
}

/** Parses one option of `def` into `state` with the definition's own parser; returns the
 *  option's xflags bit, 0 when `def` has no such option (a refused value throws). */
function apply(def: ExtDef<unknown, unknown>, state: unknown, name: string, arg: string, env: ParseEnv): number {
  const opt = findOption(def, name);
  if (!opt) return 0;
  def.parse(state, opt, [arg], false, env);
  return 1 << opt.id;
}

/**
 * The Rule for `-A CHAIN <ruleText>`, or null when the text is not one of the shapes handled here
 * (then parseRuleText() must read it). `ruleText` becomes the rule's `text`; `whole` is the text it
 * was cut from at `from`, read instead of it when given.
 */
export function fastRule(ruleText: string, family: Family, chainName?: (name: string) => string, whole?: string, from = 0): Rule | null {
  text = whole ?? ruleText;
  pos = whole !== undefined ? from : 0;
  end = pos + ruleText.length;
  nameOf = chainName ?? null;
  try {
    return scan(ruleText, family);
  } catch {
    return null; // a definition refused a value: the general parser reports it
  } finally {
    text = '';
    nameOf = null;
  }
}

/**
 * The caller's own string for a chain name it knows (the declared chain's), so every later lookup
 * of a jump's target by name (reference counts, the jump graph, the compiler's chain ids) finds
 * the very string the maps hold: its hash already computed, equal at the first comparison,
 * instead of a fresh slice of the text compared character by character at 60,000 chains.
 */
let nameOf: ((name: string) => string) | null = null;

function scan(ruleText: string, family: Family): Rule | null {
  let src: AddrMatch | null = null;
  let dst: AddrMatch | null = null;
  let proto = 0;
  let hasProto = false;
  const matches = MATCHES;
  let nm = 0;
  let comment: Match | null = null;
  // The tcp/udp match: loaded by `-m`, or by its first option after `-p` (rule.ts extOption());
  // its port options' texts, read by the definition at the end.
  let l4: MatchDef | null = null;
  let l4At = -1;
  let dportText: string | null = null;
  let sportText: string | null = null;
  let stat = false;
  let acct = false;
  let target: Target | null = null;
  let jumped = false;
  const env = ENV;
  env.family = family;
  env.proto = 0;

  while (next()) {
    if (jumped) return null; // target options other than DNAT's single one
    let invert = false;
    if (is('!')) {
      if (!next()) return null;
      invert = true;
      if (!is('-s') && !is('-d')) return null;
    }
    if (text.charCodeAt(wordStart) !== 45 || wordQuoted) return null; // '-'
    // Base options by their letter (`-m` = 109, `-p` 112, `-s` 115, `-d` 100, `-j` 106).
    const short = wordEnd - wordStart === 2 ? text.charCodeAt(wordStart + 1) : 0;
    if (short === 109) {
      if (!next() || wordQuoted) return null;
      if (is('comment')) {
        if (comment || !next() || !is('--comment') || !next()) return null;
        const value = word();
        const quoted = wordQuoted;
        if (value[0] === '-' && !quoted) return null;
        // An unquoted comment followed by a word that is not an option: rule.ts may join them.
        if (!quoted) {
          const save = pos;
          if (next() && !(text.charCodeAt(wordStart) === 45 && wordEnd - wordStart > 1) && !is('!')) return null;
          if (pos < 0) return null;
          pos = save;
        }
        comment = singleOption(COMMENT, comments, 'comment', value, env);
        if (!comment) return null;
        matches[nm++] = comment;
      } else if (is('tcp') || is('udp')) {
        if (l4) return null;
        l4 = is('tcp') ? TCP : UDP;
        l4At = nm++; // filled in at the end
      } else if (is('statistic')) {
        // `-m statistic --mode random --probability P`, the only form kube-proxy writes.
        if (stat || !next() || !is('--mode') || !next() || !is('random') || !next() || !is('--probability') || !next()) return null;
        stat = true;
        const p = word();
        let m = probabilities.get(p);
        if (!m) {
          const s = STATISTIC.init(env);
          const mode = apply(STATISTIC, s, 'mode', 'random', env);
          const prob = mode && apply(STATISTIC, s, 'probability', p, env);
          if (!prob) return null;
          STATISTIC.check?.(s, mode | prob, env);
          checkFinal(STATISTIC, mode | prob);
          m = probabilities.set(p, STATISTIC.build(s, env));
        }
        matches[nm++] = m;
      } else if (is('nfacct')) {
        // `-m nfacct --nfacct-name NAME`, kube-proxy's NodePort-on-localhost counter.
        if (acct || !next() || !is('--nfacct-name') || !next() || wordQuoted) return null;
        acct = true;
        const name = word();
        if (name[0] === '-') return null;
        const m = singleOption(NFACCT, accounts, 'nfacct-name', name, env);
        if (!m) return null;
        matches[nm++] = m;
      } else {
        return null;
      }
      continue;
    }
    if (short === 112) {
      if (hasProto || !next()) return null;
      if (is('tcp')) proto = 6;
      else if (is('udp')) proto = 17;
      else if (is('sctp')) proto = 132;
      else return null;
      hasProto = true;
      env.proto = proto;
      continue;
    }
    if (short === 115 || short === 100) {
      const isSrc = short === 115;
      if ((isSrc ? src : dst) || !next() || wordQuoted) return null;
      const a = addrOf(word(), invert, family);
      if (!a) return null;
      if (isSrc) src = a;
      else dst = a;
      continue;
    }
    if (is('--dport') || is('--sport')) {
      const dport = is('--dport');
      if ((dport ? dportText : sportText) !== null) return null;
      if (!l4) {
        // Loaded on demand by the protocol, as rule.ts extOption() does.
        if (proto !== 6 && proto !== 17) return null;
        l4 = proto === 6 ? TCP : UDP;
        l4At = nm++;
      }
      if (!next() || wordQuoted) return null;
      if (dport) dportText = word();
      else sportText = word();
      continue;
    }
    if (short === 106) {
      if (!next() || wordQuoted) return null;
      const name = word();
      if (name.length > MAX_NAME) return null;
      if (VERDICTS.has(name)) {
        target = verdicts.get(name) ?? null;
        if (!target) verdicts.set(name, (target = { kind: name } as Target));
      } else if (name === 'DNAT') {
        // `-j DNAT --to-destination A:P`, kube-proxy's endpoint rule.
        if (!next() || !is('--to-destination') || !next() || wordQuoted) return null;
        target = family === 4 ? dnatTo(proto) : null;
        if (target !== null) {
          jumped = true;
          continue;
        }
        const s = DNAT.init(env);
        const bit = apply(DNAT, s, 'to-destination', word(), env);
        if (!bit) return null;
        DNAT.check?.(s, bit, env);
        checkFinal(DNAT, bit);
        target = DNAT.build(s, env);
      } else if (TARGET_DEFS.has(name) || name === 'CONTINUE') {
        return null;
      } else {
        target = jumps.get(name) ?? jumps.set(name, { kind: 'jump', chain: nameOf !== null ? nameOf(name) : name, goto: false });
      }
      jumped = true;
      continue;
    }
    return null;
  }
  if (pos < 0) return null;
  if (l4) {
    // The general parser checks tcp/udp against `-p`; only the plain, consistent case is ours.
    if ((l4 === TCP ? 6 : 17) !== proto) return null;
    matches[l4At] = portMatch(l4, dportText, sportText, env);
  }
  return {
    family, text: ruleText, src, dst, inIface: null, outIface: null,
    proto, protoInvert: false, fragment: null, matches: sharedList(matches, nm), target,
    counters: ZERO_COUNTERS,
  };
}

/** Scratch of scan() (never re-entered): the rule's matches, and what the definitions read. */
const MATCHES: Match[] = [];
const ENV: { family: Family; proto: number; protoInvert: boolean } = { family: 4, proto: 0, protoInvert: false };

/** The tcp and the udp matches built for a `--dport` text alone (or none, key ''). */
const tcpByDport = new Recent<Match>();
const udpByDport = new Recent<Match>();

/**
 * The tcp/udp match of these port options, as the definition parses, checks and builds it, shared
 * with an equal one built recently. A `--dport` text alone (nearly every kube-proxy rule that has
 * one) is looked up before it is parsed: the same text always makes the same match.
 */
function portMatch(l4: MatchDef, dportText: string | null, sportText: string | null, env: ParseEnv): Match {
  const cache = sportText === null ? (l4 === TCP ? tcpByDport : udpByDport) : null;
  const hit = cache !== null ? cache.get(dportText ?? '') : null;
  if (hit !== null) return hit;
  const s = l4.init(env);
  let xflags = 0;
  for (const [name, text] of [['dport', dportText], ['sport', sportText]] as const) {
    if (text === null) continue;
    const bit = apply(l4, s, name, text, env);
    if (!bit) throw new Error(`no --${name}`); // fastRule: the general parser reads the rule
    xflags |= bit;
  }
  l4.check?.(s, xflags, env);
  checkFinal(l4, xflags);
  const m = sharedPorts(l4.build(s, env) as Match & { kind: 'tcp' | 'udp' });
  return cache !== null ? cache.set(dportText ?? '', m) : m;
}

/** An equal list built recently, else the first `n` of `ms` (the scan's scratch) copied out at
 *  their length (rules live long), remembered. */
function sharedList(ms: Match[], n: number): readonly Match[] {
  next: for (let i = 0; i < lists.length; i++) {
    const l = lists[i]!;
    if (l.length !== n) continue;
    for (let k = 0; k < n; k++) if (l[k] !== ms[k]) continue next;
    return l;
  }
  const copy = ms.slice(0, n);
  if (lists.length >= 8) lists.shift();
  lists.push(copy);
  return copy;
}

/**
 * `--to-destination a.b.c.d:port` (the word just read) as DNAT's definition builds it, or null
 * for any other spelling (ranges, no port, a port in another base or by name, another protocol):
 * then the definition reads it. The address shares the words of the rule before when equal (a
 * KUBE-SEP chain's `-s` rule).
 */
function dnatTo(proto: number): Target | null {
  // libxt_NAT.c: a port needs TCP, UDP or SCTP here (ext-target.ts parseNatPorts()).
  if (proto !== 6 && proto !== 17 && proto !== 132) return null;
  let colon = wordStart;
  while (colon < wordEnd && text.charCodeAt(colon) !== 58) colon++;
  if (colon >= wordEnd) return null;
  const v = plainIPv4(text, wordStart, colon);
  if (v < 0) return null;
  let port = 0;
  const digits = wordEnd - colon - 1;
  if (digits < 1 || digits > 5 || (digits > 1 && text.charCodeAt(colon + 1) === 48)) return null;
  for (let i = colon + 1; i < wordEnd; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return null;
    port = port * 10 + (c - 48);
  }
  if (port > 65535) return null;
  const w: Words = lastHost !== null && lastHost[0] === v ? lastHost : [v, 0, 0, 0];
  // A service's endpoints usually share their port: so do their rules.
  if (lastPort === null || lastPort.lo !== port) lastPort = { lo: port, hi: port };
  return { kind: 'DNAT', to: { addrMin: w, addrMax: w, ports: lastPort }, random: false, persistent: false } as Target;
}

/** An equal tcp/udp match built recently, else `m` (remembered). */
function sharedPorts(m: Match & { kind: 'tcp' | 'udp' }): Match {
  if ((m as { flags?: unknown }).flags || (m as { option?: unknown }).option) return m;
  for (const p of ports) {
    if (p.kind === m.kind && p.dport.lo === m.dport.lo && p.dport.hi === m.dport.hi && p.sport.lo === m.sport.lo
      && p.sport.hi === m.sport.hi && p.dportInvert === m.dportInvert && p.sportInvert === m.sportInvert) return p;
  }
  if (ports.length >= 8) ports.shift();
  ports.push(m);
  return m;
}

/** `-s`/`-d`: networks (which repeat, `! -s 10.0.0.0/8` in every KUBE-SVC chain) are shared, and
 *  so are IPv4 hosts seen recently (a service's address in its KUBE-SERVICES and KUBE-SVC rules). */
function addrOf(t: string, invert: boolean, family: Family): AddrMatch | null {
  if (family === 4) {
    const h = host4(t, invert);
    if (h !== null) return h;
  }
  if (t.indexOf(',') >= 0) return null;
  const net = t.indexOf('/') >= 0;
  const cache = nets[family === 4 ? 0 : 1];
  const key = net && invert ? '!' + t : t;
  if (net) {
    const hit = cache.get(key);
    if (hit) return hit;
  }
  let a;
  try {
    a = parseHostMask(t, family);
  } catch {
    return null;
  }
  // A literal, not a spread: V8 gives every spread copy of these a hidden class of its own.
  const m: AddrMatch = { family: a.family, addr: a.addr, mask: a.mask, prefix: a.prefix, invert };
  return net ? cache.set(key, m) : m;
}

/** `a.b.c.d` or `a.b.c.d/32` as parseHostMask() reads it, or null for any other spelling. */
function host4(t: string, invert: boolean): AddrMatch | null {
  let end = t.length;
  if (end > 3 && t.charCodeAt(end - 3) === 47 && t.charCodeAt(end - 2) === 51 && t.charCodeAt(end - 1) === 50) end -= 3; // "/32"
  const key = invert ? '!' + t : t;
  const hit = hosts.get(key);
  if (hit !== null) {
    lastHost = hit.addr;
    return hit;
  }
  const v = plainIPv4(t, 0, end);
  if (v < 0) return null;
  const addr: Words = [v, 0, 0, 0];
  lastHost = addr;
  return hosts.set(key, { family: 4, addr, mask: prefixMask(4, 32), prefix: 32, invert });
}
