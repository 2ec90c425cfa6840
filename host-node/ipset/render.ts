// ipset/render.ts — `ipset list` and `ipset save` output as ipset 7.17 prints it: the Name / Type /
// Revision / Header / Size in memory / References / Number of entries / Members block (blank line
// between sets), -terse, -name, -output save, and the save form (`create …` then `add …` lines).
// Members are printed in a fixed order (addresses, then protocol, port, second address) where the
// kernel prints its hash order. Timeouts show the whole seconds left (ip_set_timeout_get(): at least
// 1 while the element lives; 0 for a permanent one). Pure; counters come from a callback.
//
// Approximations: `Size in memory` follows the kernel's formula (the type's struct sizes, 32 bytes per
// hash bucket, two element slots per bucket step, extension sizes, comment strings) with the bucket
// occupancy estimated from the element count instead of the real hash distribution; exact for empty
// hash sets and for bitmap:port. `hashsize` grows with the element count as model.ts estimates.
import { type IpSet, type Member } from './model.js';
import { formatElement, compareElements } from './element.js';
import { EXT_COUNTER, EXT_TIMEOUT, EXT_COMMENT, HBUCKET, COMMENT_RCU } from './types.js';

export interface RenderOpts {
  now: number;
  /** References to the set (iptables rules naming it). */
  refs: (name: string) => number;
  /** The element's packet and byte counters (sets with counters). */
  counters: (s: IpSet, m: Member) => [bigint, bigint];
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

// ip_set_elem_len(): the element struct plus counter, timeout and comment extensions, in that order.
function elemLen(s: IpSet): number {
  const v6 = s.family === 6 ? 1 : 0;
  let len = s.def.elemSize[v6]!;
  if (s.counters) len = align(len, 8) + EXT_COUNTER;
  if (s.timeout !== null) len = align(len, 8) + EXT_TIMEOUT;
  if (s.comment) len = align(len, 8) + EXT_COMMENT;
  return align(len, s.def.elemAlign);
}

function commentBytes(members: Member[]): number {
  let n = 0;
  for (const m of members) if (m.comment) n += COMMENT_RCU + new TextEncoder().encode(m.comment).length + 1;
  return n;
}

/** `Size in memory` (approximate for hash sets with members; see the header comment). */
export function memSize(s: IpSet, members: Member[]): number {
  if (!s.def.hash) {
    // bitmap_port: struct + bitmap (longs) + extension array per port of the range.
    const ports = s.range![1] - s.range![0] + 1;
    let ext = 0;
    if (s.counters) ext = align(ext, 8) + EXT_COUNTER;
    if (s.timeout !== null) ext = align(ext, 8) + EXT_TIMEOUT;
    if (s.comment) ext = align(ext, 8) + EXT_COMMENT;
    return s.def.emptySize[0]! + Math.ceil(ports / 64) * 8 + ext * ports + commentBytes(members);
  }
  const v6 = s.family === 6 ? 1 : 0;
  const bits = Math.log2(s.hashsize);
  const regions = bits > 10 ? (2 ** (bits - 10) - 1) * 24 : 0;
  const n = members.length;
  if (n === 0) return s.def.emptySize[v6]! + regions;
  // Poisson occupancy: buckets in use, and slots allocated two at a time (n + buckets with odd n).
  const h = s.hashsize, lambda = n / h;
  const buckets = Math.round(h * (1 - Math.exp(-lambda)));
  const slots = n + Math.round((h * (1 - Math.exp(-2 * lambda))) / 2);
  return s.def.emptySize[v6]! + regions + buckets * HBUCKET + slots * elemLen(s) + commentBytes(members);
}

function header(s: IpSet): string {
  const ext = (s.timeout !== null ? ` timeout ${s.timeout}` : '') + (s.counters ? ' counters' : '') + (s.comment ? ' comment' : '');
  if (!s.def.hash) return `range ${s.range![0]}-${s.range![1]}${ext}`;
  return `family inet${s.family === 6 ? '6' : ''} hashsize ${s.hashsize} maxelem ${s.maxelem}${ext} ` +
    `bucketsize ${s.bucketsize} initval 0x${s.initval.toString(16).padStart(8, '0')}`;
}

/**
 * The members' lines in the order ipset 7.17 prints them with `-sorted`: a bitmap in port order;
 * a hash set by its printed lines, compared as lib/session.c bystrcmp() compares them (below).
 * Without `-sorted` ipset prints a hash set in the kernel's bucket order, which svcplane does
 * not keep: it prints the sorted order then too.
 */
function memberLines(s: IpSet, members: Member[], o: RenderOpts): string[] {
  if (!s.def.hash) return members.sort((a, b) => compareElements(a.el, b.el)).map((m) => memberText(s, m, o));
  return members.map((m) => memberText(s, m, o)).sort((a, b) => printedOrder(a + '\n', b + '\n'));
}

const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);
const hexDigit = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1);

/** strtol(s + i, &end, 16): [value, end]; end === i when no digits were read. */
function strtol16(s: string, i: number): [number, number] {
  let k = i;
  while (k < s.length && isSpace(s.charCodeAt(k))) k++;
  let sign = 1;
  if (s[k] === '+' || s[k] === '-') sign = s[k++] === '-' ? -1 : 1;
  if (s[k] === '0' && (s[k + 1] === 'x' || s[k + 1] === 'X') && hexDigit(s.charCodeAt(k + 2)) >= 0) k += 2;
  const start = k;
  let v = 0;
  for (let d; k < s.length && (d = hexDigit(s.charCodeAt(k))) >= 0; k++) v = v * 16 + d;
  return k === start ? [0, i] : [sign * v, k];
}

/** strcspn(s + i, ":,"). */
function spanTo(s: string, i: number): number {
  let k = i;
  while (k < s.length && s[k] !== ':' && s[k] !== ',') k++;
  return k - i;
}

const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * ipset's comparison of two printed members (lib/session.c bystrcmp()): leading numbers are read
 * as hexadecimal (so dotted quads and ports compare by value as well), equal numbers go on to
 * the next field; where both have a prefix length the lengths compare the other way round (a
 * longer prefix first), where one has, it comes second; a field without a leading number (a
 * protocol name) compares by length, then by its letters; IPv6's `::` sorts before a group.
 */
export function printedOrder(x: string, y: string): number {
  let i = 0, j = 0, neg = 1;
  while (i < x.length && j < y.length) {
    const [n1, e1] = strtol16(x, i);
    const [n2, e2] = strtol16(y, j);
    if (e1 === i || e2 === j) {
      const l1 = spanTo(x, i), l2 = spanTo(y, j);
      if (l1 === 0 && l2 === 0) return byteOrder(x.slice(i), y.slice(j));
      if (l1 !== l2) return l1 < l2 ? -1 : 1;
      const c = byteOrder(x.slice(i, i + l1), y.slice(j, j + l1));
      if (c !== 0) return c;
      i += l1 + 1;
      j += l1 + 1;
      neg = 1;
      continue;
    }
    if (n1 !== n2) return neg * (n1 - n2);
    const s1 = x[e1], s2 = y[e2];
    if (s1 === '/' || s2 === '/') {
      if (s1 !== s2) return s1 === '/' ? 1 : -1;
      neg = -1;
    }
    i = e1 + 1;
    j = e2 + 1;
    if (x[i] === ':' || y[j] === ':') {
      if (x[i] !== y[j]) return x[i] === ':' ? -1 : 1;
      i++;
      j++;
    }
  }
  return i < x.length ? 1 : j < y.length ? -1 : 0;
}

function memberText(s: IpSet, m: Member, o: RenderOpts): string {
  let t = formatElement(s.def, m.el);
  // ipset prints: element, timeout, nomatch, packets/bytes, comment.
  if (s.timeout !== null) {
    const left = m.expires === null ? 0 : Math.max(1, Math.floor((m.expires - o.now) / 1000));
    t += ` timeout ${left}`;
  }
  if (m.nomatch) t += ' nomatch';
  if (s.counters) {
    const [p, b] = o.counters(s, m);
    t += ` packets ${p} bytes ${b}`;
  }
  if (s.comment && m.comment !== null) t += ` comment "${m.comment}"`;
  return t;
}

/** One set as `ipset list` prints it (`terse`: without members). */
export function renderListOne(s: IpSet, o: RenderOpts, terse = false): string {
  const members = s.present(o.now);
  const lines = [
    `Name: ${s.name}`,
    `Type: ${s.def.name}`,
    `Revision: ${s.def.revision}`,
    `Header: ${header(s)}`,
    `Size in memory: ${memSize(s, members)}`,
    `References: ${o.refs(s.name)}`,
    `Number of entries: ${members.length}`,
  ];
  if (!terse) {
    lines.push('Members:');
    // One by one: spreading a set's members as arguments overflows the stack past ~120,000.
    for (const line of memberLines(s, members, o)) lines.push(line);
  }
  return lines.join('\n') + '\n';
}

/** Several sets as `ipset list` prints them: blank line between sets. */
export function renderList(sets: IpSet[], o: RenderOpts, terse = false): string {
  return sets.map((s) => renderListOne(s, o, terse)).join('\n');
}

/** `ipset list -name`. */
export function renderNames(sets: IpSet[]): string {
  return sets.map((s) => `${s.name}\n`).join('');
}

/** `ipset save`: restore input that recreates the sets. */
export function renderSave(sets: IpSet[], o: RenderOpts): string {
  let out = '';
  for (const s of sets) {
    out += `create ${s.name} ${s.def.name} ${header(s)}\n`;
    for (const line of memberLines(s, s.present(o.now), o)) out += `add ${s.name} ${line}\n`;
  }
  return out;
}
