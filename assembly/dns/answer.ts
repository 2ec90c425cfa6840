// dns/answer.ts — answers one DNS query message from the record table (table.ts): header and
// question checks, EDNS0 OPT (RFC 6891), authoritative answers, NXDOMAIN/NODATA with the zone's SOA
// in authority (RFC 2308), CNAME for ExternalName services with the chain followed through the
// table (a chain leaving the zone goes upstream like an outside name), the spec's deprecated pod A records
// (synthesized from the name), REFUSED outside the zone — or, with forwarding on (dnsForwardSet),
// the DROP_UPSTREAM mark that hands the query to the host's upstream forwarder — FORMERR for
// malformed queries, TC=1 when a UDP answer does not fit (RFC 1035 §4.2.1, RFC 2181 §9). Never
// allocates, never traps, never forwards itself and never reads a clock.
import {
  readName, skipName, writeName, nameOrig, nameLow, nameLen, be16, be32, put16, put32,
  dictReset, dictMark, dictRestore, isWithin,
} from "./name";
import {
  tableReady, lookup, groupFirst, groupCountOf, recType, recTtl, recOwner, recRdata, recRdlen,
  soaRecord, soaNegativeTtl, zonePtr, zoneLen,
  T_A, T_AAAA, T_CNAME, T_SOA, T_PTR, T_NS, T_SRV, T_OPT, T_ANY,
} from "./table";

// RCODEs (RFC 1035 §4.1.1, RFC 6891 §9).
export const RC_NOERROR: u32 = 0;
export const RC_FORMERR: u32 = 1;
export const RC_NXDOMAIN: u32 = 3;
export const RC_NOTIMP: u32 = 4;
export const RC_REFUSED: u32 = 5;
export const RC_BADVERS: u32 = 16;

// Counters, one u32 each (dnsCountersPtr): what was answered and why anything was dropped.
export const C_QUERIES: u32 = 0;      // every call
export const C_NOERROR: u32 = 1;      // answers with records
export const C_NODATA: u32 = 2;       // NOERROR, empty answer
export const C_NXDOMAIN: u32 = 3;
export const C_REFUSED: u32 = 4;
export const C_FORMERR: u32 = 5;
export const C_NOTIMP: u32 = 6;
export const C_BADVERS: u32 = 7;
export const C_TRUNCATED: u32 = 8;    // TC=1 sent
export const C_DROP_SHORT: u32 = 9;   // under 12 bytes: no header to answer
export const C_DROP_RESPONSE: u32 = 10; // QR=1: never answer a response (no reflection loops)
export const C_DROP_NOROOM: u32 = 11; // the output buffer cannot hold even the header and question
export const C_SERVFAIL: u32 = 12;    // SERVFAIL answers: none from the table (a TCP answer too big is truncated)
export const C_UPSTREAM: u32 = 13;    // outside the zone with forwarding on: handed to the host
export const C_TCP_PASSED: u32 = 14;  // packet path: TCP to the cluster DNS address, left to the pipeline (a Service to the host's listener)
export const C_PARTIAL: u32 = 15;     // dnsAnswerTcp: the frame is not complete yet
export const C_COUNT: u32 = 16;

export const DROP_SHORT: i32 = -1;
export const DROP_RESPONSE: i32 = -2;
export const DROP_NOROOM: i32 = -3;
export const DROP_UPSTREAM: i32 = -4;   // not ours: the host forwards it upstream (nothing written)

// Whether names outside the zone (and reverse names we hold no record for) go to the host's
// upstream forwarder instead of getting REFUSED. Set by the host only when it has an upstream.
let forward = false;
export function forwardSet(on: bool): void { forward = on; }
// Off while dnsAnswerLocal answers: the query was counted once already, when it went upstream.
let counting = true;

export const counters: usize = memory.data(C_COUNT * 4);
@inline function bump(c: u32): void { if (counting) { const p = counters + (<usize>c << 2); store<u32>(p, load<u32>(p) + 1); } }
@inline export function countDns(c: u32): void { bump(c); }
export function countersReset(): void { memory.fill(counters, 0, C_COUNT * 4); }

const HDR: u32 = 12;
const OPT_BYTES: u32 = 11;            // root name, type, class, ttl, rdlen 0
const CLASS_IN: u32 = 1;
const UDP_MIN: u32 = 512;             // RFC 1035 §2.3.4 / RFC 6891 §6.2.5: below 512 means 512
const F_QR: u32 = 0x8000;
const F_AA: u32 = 0x0400;
const F_TC: u32 = 0x0200;
const F_RD: u32 = 0x0100;

// State of the answer being built.
let qid: u32 = 0;
let qflags: u32 = 0;
let edns = false;
let ednsVersion: u32 = 0;
let clientUdp: u32 = 0;
let tc = false;

// Writes the header: QR, the query's opcode and RD, AA as given, rcode's low 4 bits.
function header(out: usize, rcode: u32, aa: bool, qd: u32, an: u32, ns: u32, ar: u32): void {
  put16(out, qid);
  let f = F_QR | (qflags & 0x7800) | (qflags & F_RD) | (rcode & 0xf);
  if (aa) f |= F_AA;
  if (tc) f |= F_TC;
  put16(out + 2, f);
  put16(out + 4, qd);
  put16(out + 6, an);
  put16(out + 8, ns);
  put16(out + 10, ar);
}

// OPT pseudo-RR (RFC 6891 §6.1.2): our UDP size in CLASS, extended rcode in the TTL's top byte.
function writeOpt(out: usize, pos: u32, udp: u32, rcode: u32): u32 {
  store<u8>(out + pos, 0);
  put16(out + pos + 1, T_OPT);
  put16(out + pos + 3, udp);
  put32(out + pos + 5, (rcode >> 4) << 24);
  put16(out + pos + 9, 0);
  return pos + OPT_BYTES;
}

// A reply with no question (FORMERR, NOTIMP): header only.
function bare(out: usize, cap: u32, rcode: u32, counter: u32): i32 {
  if (cap < HDR) { bump(C_DROP_NOROOM); return DROP_NOROOM; }
  tc = false;
  header(out, rcode, false, 0, 0, 0, 0);
  bump(counter);
  return <i32>HDR;
}

// Writes record r at pos (owner compressed). Returns the new position or -1 when past `limit`.
function writeRecord(out: usize, pos: u32, limit: u32, r: u32, ttl: u32): i32 {
  const mark = dictMark();
  let p = writeName(out, pos, limit, recOwner(r), true);
  if (p < 0 || <u32>p + 10 > limit) { dictRestore(mark); return -1; }
  const type = recType(r);
  put16(out + p, type);
  put16(out + p + 2, CLASS_IN);
  put32(out + p + 4, ttl);
  const rdStart = <u32>p + 10;
  const rd = recRdata(r);
  const rdlen = recRdlen(r);
  let e: i32;
  if (type == T_CNAME || type == T_PTR || type == T_NS) {
    // RFC 3597 §4: compression is allowed in the rdata of the RFC 1035 types.
    e = writeName(out, rdStart, limit, rd, true);
  } else if (type == T_SOA) {
    const mname = writeName(out, rdStart, limit, rd, true);
    const rn = rd + <usize>rnameOffset(rd);
    e = mname < 0 ? -1 : writeName(out, <u32>mname, limit, rn, true);
    if (e >= 0) {
      if (<u32>e + 20 > limit) e = -1;
      else { memory.copy(out + <u32>e, rd + rdlen - 20, 20); e += 20; }
    }
  } else if (type == T_SRV) {
    // RFC 2782: the SRV target is never compressed.
    if (rdStart + 6 > limit) e = -1;
    else {
      memory.copy(out + rdStart, rd, 6);
      e = writeName(out, rdStart + 6, limit, rd + 6, false);
    }
  } else {
    if (rdStart + rdlen > limit) e = -1;
    else { memory.copy(out + rdStart, rd, rdlen); e = <i32>(rdStart + rdlen); }
  }
  if (e < 0) { dictRestore(mark); return -1; }
  put16(out + rdStart - 2, <u32>e - rdStart);
  return e;
}

// How a CNAME chain followed through the table ended (chase).
const CHASE_DONE: u32 = 0;      // records of the type found, or the chain cut short
const CHASE_NXDOMAIN: u32 = 1;  // a target in the zone that does not exist
const CHASE_NODATA: u32 = 2;    // a target in the zone without records of the type
const CHASE_OUT: u32 = 3;       // a target outside the zone: only an upstream can answer for it
// Links followed at most: a chain of ExternalName Services naming each other, or a loop, ends there
// with what was written (BIND's limit for CNAME chains is 16; a Service chain longer than a few
// links is a mistake).
const CHASE_MAX: u32 = 8;
// Where writeGroup and chase write next, and the answer records they have written: set by the
// caller before the first, advanced by both.
let wpos: u32 = 0;
let written: u32 = 0;
// writeGroup's outcomes besides a CNAME record's index (its target still to follow).
const GROUP_ANSWERED: i64 = -1;
const GROUP_NODATA: i64 = -2;

// Writes the records of name group g that answer `qtype` — every one for ANY — or, with none, the
// name's CNAME, which answers any type (RFC 1034 §3.6.2). GROUP_ANSWERED, GROUP_NODATA (neither
// there), or the CNAME record written.
function writeGroup(out: usize, body: u32, g: u32, qtype: u32): i64 {
  const first = groupFirst(g);
  const n = groupCountOf(g);
  let cname: i64 = -1;
  let has = false;
  for (let i: u32 = 0; i < n; i++) {
    const t = recType(first + i);
    if (t == qtype || qtype == T_ANY) has = true;
    else if (t == T_CNAME) cname = first + i;
  }
  if (!has && cname < 0) return GROUP_NODATA;
  for (let i: u32 = 0; i < n && !tc; i++) {
    const r = first + i;
    const t = recType(r);
    if (has ? t != qtype && qtype != T_ANY : <i64>r != cname) continue;
    const e = writeRecord(out, wpos, body, r, recTtl(r));
    if (e < 0) tc = true;
    else { wpos = <u32>e; written++; }
  }
  return has ? GROUP_ANSWERED : cname;
}

// RFC 1034 §4.3.2 step 3a: a CNAME that does not answer the asked type sends the lookup on to its
// target. Follows the chain from CNAME record `cname` (already written) through the table — an
// ExternalName Service naming another Service, or a pod name — writing each link and then the
// target's records of `qtype`. The rcode is the last name's (RFC 6604 §2). A stub resolver (glibc,
// musl) never follows a CNAME by itself: it takes the addresses the answer carries, or none.
function chase(out: usize, body: u32, qtype: u32, cname: u32): u32 {
  let target = recRdata(cname);
  for (let hop: u32 = 0; hop < CHASE_MAX; hop++) {
    const tlen = rnameOffset(target);
    const g = lookup(target, tlen);
    if (g < 0) {
      if (!isWithin(target, tlen, zonePtr(), zoneLen())) return CHASE_OUT;
      const fam = podName(target, tlen, zoneLen());
      if (fam == 0) return CHASE_NXDOMAIN;
      if (qtype != (fam == 4 ? T_A : T_AAAA) && qtype != T_ANY) return CHASE_NODATA;
      const e = writePod(out, wpos, body, target, fam);
      if (e < 0) tc = true;
      else { wpos = <u32>e; written++; }
      return CHASE_DONE;
    }
    const next = writeGroup(out, body, <u32>g, qtype);
    if (next == GROUP_NODATA) return CHASE_NODATA;
    if (next == GROUP_ANSWERED || tc) return CHASE_DONE;
    target = recRdata(<u32>next);
  }
  return CHASE_DONE;
}

// The address podName read: 4 bytes (IPv4) or 16 (IPv6), network order.
const POD_ADDR: usize = memory.data(16);

// The A or AAAA record (family 4 or 6) of the pod name podName read last, owned by the flat wire
// name `owner` (lowercase), or by the question's name when `owner` is 0 (a pointer to it). The
// new position, or -1 past `limit`.
function writePod(out: usize, pos: u32, limit: u32, owner: usize, family: u32): i32 {
  const mark = dictMark();
  let p: i32;
  if (owner == 0) {
    p = pos + 2 <= limit ? <i32>(pos + 2) : -1;
    if (p >= 0) put16(out + pos, 0xc000 | HDR);
  } else {
    p = writeName(out, pos, limit, owner, true);
  }
  const n: u32 = family == 4 ? 4 : 16;
  if (p < 0 || <u32>p + 10 + n > limit) { dictRestore(mark); return -1; }
  put16(out + p, family == 4 ? T_A : T_AAAA);
  put16(out + p + 2, CLASS_IN);
  put32(out + p + 4, recTtl(soaRecord()));
  put16(out + p + 8, n);
  memory.copy(out + <u32>p + 10, POD_ADDR, n);
  return p + 10 + <i32>n;
}

// "pod" in wire form.
const POD: usize = memory.data<u8>([3, 0x70, 0x6f, 0x64]);

// If lowercase name n (len, in the zone of zlen octets) is <address>.<ns>.pod.<zone>, the address
// written with dashes (the spec's deprecated pod records), its family (4 or 6) with the address in
// POD_ADDR; else 0. As CoreDNS reads the first label (findPods): with exactly three dashes and no
// two together, an IPv4 address (10-244-1-5); otherwise an IPv6 one with its colons as dashes
// (fd00--5), each then as Go's net.ParseIP takes it (no IPv4 part with a leading zero).
function podName(n: usize, len: u32, zlen: u32): u32 {
  const l1 = <u32>load<u8>(n);
  if (l1 < 2 || 1 + l1 >= len) return 0;
  const l2at = 1 + l1;
  const l3at = l2at + 1 + <u32>load<u8>(n + l2at);
  if (l3at + 4 + zlen != len || memory.compare(n + l3at, POD, 4) != 0) return 0;
  let dashes: u32 = 0;
  let paired = false;
  for (let i: u32 = 1; i <= l1; i++) {
    if (load<u8>(n + i) != 0x2d) continue;
    dashes++;
    if (i > 1 && load<u8>(n + i - 1) == 0x2d) paired = true;
  }
  if (dashes == 3 && !paired) return pod4(n + 1, l1) ? 4 : 0;
  return pod6(n + 1, l1) ? 6 : 0;
}

// a-b-c-d (`l` chars at t): four decimal parts of 1-3 digits up to 255, none with a leading zero.
function pod4(t: usize, l: u32): bool {
  let part: u32 = 0, digits: u32 = 0, parts: u32 = 0;
  for (let i: u32 = 0; i <= l; i++) {
    const c = i < l ? <u32>load<u8>(t + i) : 0x2d;
    if (c == 0x2d) {
      if (digits == 0 || part > 255) return false;
      store<u8>(POD_ADDR + parts, <u8>part);
      parts++;
      part = 0;
      digits = 0;
    } else if (c - 0x30 < 10 && digits < 3 && !(digits == 1 && part == 0)) {
      part = part * 10 + (c - 0x30);
      digits++;
    } else {
      return false;
    }
  }
  return parts == 4;
}

// An IPv6 address with '-' for ':' (`l` chars at t): up to eight groups of 1-4 hex digits, one
// "--" (::) standing for the zero groups left out.
function pod6(t: usize, l: u32): bool {
  let ng: u32 = 0, gap: i32 = -1, val: u32 = 0, digits: u32 = 0;
  let i: u32 = 0;
  if (l >= 2 && load<u8>(t) == 0x2d && load<u8>(t, 1) == 0x2d) { gap = 0; i = 2; }
  else if (l > 0 && load<u8>(t) == 0x2d) return false;
  while (i < l) {
    const c = <u32>load<u8>(t + i);
    if (c == 0x2d) {
      if (digits == 0 || ng >= 8) return false;
      store<u16>(POD_GROUPS + (ng << 1), <u16>val);
      ng++;
      val = 0;
      digits = 0;
      i++;
      if (i < l && load<u8>(t + i) == 0x2d) {
        if (gap >= 0) return false;
        gap = <i32>ng;
        i++;
      } else if (i == l) {
        return false;
      }
      continue;
    }
    const d = c - 0x30 < 10 ? c - 0x30 : c - 0x61 < 6 ? c - 0x61 + 10 : 16;
    if (d > 15 || digits == 4) return false;
    val = (val << 4) | d;
    digits++;
    i++;
  }
  if (digits > 0) {
    if (ng >= 8) return false;
    store<u16>(POD_GROUPS + (ng << 1), <u16>val);
    ng++;
  }
  if (gap < 0 ? ng != 8 : ng > 7) return false;
  // The groups before the gap at the start, those after it at the end, zeros between; big-endian.
  const head: u32 = gap < 0 ? ng : <u32>gap;
  memory.fill(POD_ADDR, 0, 16);
  for (let k: u32 = 0; k < ng; k++) {
    const to = k < head ? k : 8 - ng + k;
    store<u16>(POD_ADDR + (to << 1), bswap<u16>(load<u16>(POD_GROUPS + (k << 1))));
  }
  return true;
}
// pod6's groups as read, before they are put in place.
const POD_GROUPS: usize = memory.data(16);

// Whether lowercase name n (len, in the zone of zlen octets) is pod.<zone> or <label>.pod.<zone>.
function podParent(n: usize, len: u32, zlen: u32): bool {
  if (len == 4 + zlen) return memory.compare(n, POD, 4) == 0;
  const at = 1 + <u32>load<u8>(n);
  return at + 4 + zlen == len && memory.compare(n + at, POD, 4) == 0;
}

function rnameOffset(rd: usize): u32 {
  let p: u32 = 0;
  while (true) {
    const b = <u32>load<u8>(rd + p);
    if (b == 0) return p + 1;
    p += 1 + b;
  }
}

// Answers the query at q[0, len) into out[0, cap). maxUdp: the largest UDP answer we send (our
// EDNS buffer size); tcp: no size limit but cap and 65535. Returns the answer length, or a negative
// DROP_* (the caller sends nothing).
export function dnsAnswer(q: usize, len: u32, out: usize, cap: u32, maxUdp: u32, tcp: bool): i32 {
  bump(C_QUERIES);
  tc = false;
  edns = false;
  if (len < HDR) { bump(C_DROP_SHORT); return DROP_SHORT; }
  qid = be16(q);
  qflags = be16(q + 2);
  if ((qflags & F_QR) != 0) { bump(C_DROP_RESPONSE); return DROP_RESPONSE; }
  if (((qflags >> 11) & 0xf) != 0) return bare(out, cap, RC_NOTIMP, C_NOTIMP);  // only QUERY
  const qd = be16(q + 4);
  const rest = be16(q + 6) + be16(q + 8) + be16(q + 10);
  if (qd != 1) return bare(out, cap, RC_FORMERR, C_FORMERR);
  let p = readName(q, len, HDR);
  if (p < 0 || <u32>p + 4 > len) return bare(out, cap, RC_FORMERR, C_FORMERR);
  const qtype = be16(q + <u32>p);
  const qclass = be16(q + <u32>p + 2);
  const qEnd = <u32>p + 4;
  // Walk the other sections: the OPT must be the one root-owned OPT in the additional section
  // (RFC 6891 §6.1.1: more than one is FORMERR).
  let pos = qEnd;
  const arFrom = be16(q + 6) + be16(q + 8);
  for (let i: u32 = 0; i < rest; i++) {
    const nameAt = pos;
    const e = skipName(q, len, pos);
    if (e < 0 || <u32>e + 10 > len) return bare(out, cap, RC_FORMERR, C_FORMERR);
    const type = be16(q + <u32>e);
    const rdlen = be16(q + <u32>e + 8);
    if (<u32>e + 10 + rdlen > len) return bare(out, cap, RC_FORMERR, C_FORMERR);
    if (type == T_OPT) {
      if (i < arFrom || edns || load<u8>(q + nameAt) != 0) return bare(out, cap, RC_FORMERR, C_FORMERR);
      edns = true;
      clientUdp = be16(q + <u32>e + 2);
      ednsVersion = (be32(q + <u32>e + 4) >> 16) & 0xff;
    }
    pos = <u32>e + 10 + rdlen;
  }
  if (qtype == T_OPT) return bare(out, cap, RC_FORMERR, C_FORMERR);

  // The size we may fill.
  let limit = cap;
  if (tcp) {
    if (limit > 65535) limit = 65535;
  } else {
    let udp = edns ? (clientUdp < UDP_MIN ? UDP_MIN : clientUdp) : UDP_MIN;
    const ours = maxUdp < UDP_MIN ? UDP_MIN : maxUdp;
    if (udp > ours) udp = ours;
    if (limit > udp) limit = udp;
  }
  const reserve: u32 = edns ? OPT_BYTES : 0;
  if (limit < HDR + nameLen + 4 + reserve) { bump(C_DROP_NOROOM); return DROP_NOROOM; }
  const body = limit - reserve;

  // Question, echoed with the client's case (its labels are compression targets).
  dictReset();
  let w = <u32>writeName(out, HDR, body, nameOrig, false);
  put16(out + w, qtype);
  put16(out + w + 2, qclass);
  w += 4;

  let rcode = RC_NOERROR;
  let aa = true;
  let an: u32 = 0;
  let ns: u32 = 0;
  let counter = C_NOERROR;
  if (edns && ednsVersion != 0) {
    // RFC 6891 §6.1.3: an unsupported version gets BADVERS and no answer.
    rcode = RC_BADVERS; aa = false; counter = C_BADVERS;
  } else if (qclass != CLASS_IN || !tableReady() || qtype == 251 || qtype == 252) {
    // Other classes, no table yet, and zone transfers (IXFR 251, AXFR 252) are not ours to give.
    rcode = RC_REFUSED; aa = false; counter = C_REFUSED;
  } else {
    const inZone = isWithin(nameLow, nameLen, zonePtr(), zoneLen());
    const g = lookup(nameLow, nameLen);
    const pod = g < 0 && inZone ? podName(nameLow, nameLen, zoneLen()) : 0;
    if (pod != 0) {
      // The deprecated pod records (kube-dns / CoreDNS "pods insecure"): <a>-<b>-<c>-<d>.<ns>.pod.<zone>
      // A <a>.<b>.<c>.<d>, and an IPv6 address with its colons as dashes AAAA.
      if (qtype == (pod == 4 ? T_A : T_AAAA) || qtype == T_ANY) {
        const e = writePod(out, w, body, 0, pod);
        if (e < 0) tc = true;
        else { w = <u32>e; an = 1; }
      } else {
        counter = C_NODATA;
      }
    } else if (g < 0) {
      // pod.<zone> and <ns>.pod.<zone> hold names below them (every namespace's pod names): empty
      // non-terminals, NODATA rather than NXDOMAIN (RFC 8020).
      if (inZone && podParent(nameLow, nameLen, zoneLen())) counter = C_NODATA;
      else if (inZone) { rcode = RC_NXDOMAIN; counter = C_NXDOMAIN; }
      else if (forward) { bump(C_UPSTREAM); return DROP_UPSTREAM; }
      else { rcode = RC_REFUSED; aa = false; counter = C_REFUSED; }
    } else {
      wpos = w;
      written = 0;
      const got = writeGroup(out, body, <u32>g, qtype);
      if (got == GROUP_NODATA) counter = C_NODATA;
      else if (got >= 0 && !tc) {
        const end = chase(out, body, qtype, <u32>got);
        if (end == CHASE_NXDOMAIN) { rcode = RC_NXDOMAIN; counter = C_NXDOMAIN; }
        else if (end == CHASE_NODATA) counter = C_NODATA;
        else if (end == CHASE_OUT && forward) { bump(C_UPSTREAM); return DROP_UPSTREAM; }
      }
      w = wpos;
      an += written;
    }
    // NXDOMAIN / NODATA carry the zone's SOA in authority (RFC 2308 §3) when the name is in the
    // zone; the reverse trees have no SOA of ours.
    if (inZone && (rcode == RC_NXDOMAIN || counter == C_NODATA)) {
      const e = writeRecord(out, w, body, soaRecord(), soaNegativeTtl());
      if (e < 0) tc = true;
      else { w = <u32>e; ns = 1; }
    }
  }
  // An answer too big for TCP's 65535 bytes (or the caller's buffer) keeps the records that fit
  // and sets TC, as over UDP: CoreDNS does the same (request.go Scrub: "even TCP message will get
  // the bit"), so a headless Service of 5,000 pods still resolves to the 4,000 that fit.
  if (edns) w = writeOpt(out, w, maxUdp < UDP_MIN ? UDP_MIN : (maxUdp > 65535 ? 65535 : maxUdp), rcode);
  header(out, rcode, aa, 1, an, ns, edns ? 1 : 0);
  if (tc) bump(C_TRUNCATED);
  bump(counter);
  return <i32>w;
}

// The table's part of the answer to a query dnsAnswer hands upstream: dnsAnswer as with forwarding
// off, counting nothing (the query was counted when it went upstream). For an ExternalName naming a
// host outside the zone, that is the CNAME chain the host's forwarder then completes upstream.
export function dnsAnswerLocal(q: usize, len: u32, out: usize, cap: u32, maxUdp: u32, tcp: bool): i32 {
  const was = forward;
  forward = false;
  counting = false;
  const n = dnsAnswer(q, len, out, cap, maxUdp, tcp);
  forward = was;
  counting = true;
  return n;
}
