// capture.ts — reads a packet capture streamed from a file through a fixed 8 MiB window: classic pcap (microsecond and nanosecond
// magic, either byte order) and pcapng (section, interface description and enhanced/simple packet
// blocks, if_tsresol, either byte order per section), and finds the IP header under the link layer
// (Ethernet with up to two VLAN tags, raw IP, Linux cooked v1 and v2, BSD loopback). Every length is
// checked against the bytes present before it is read: a damaged capture ends with capError set,
// never a trap. Never allocates after capOpen; never writes the capture.
import { readInto } from "./files";

/** Why reading stopped early (a static string); empty at a clean end. */
export let capError: string = "";

// The current packet, valid after capNext() returned true.
export let capData: usize = 0;
export let capLen: u32 = 0;
export let capLink: u32 = 0;
export let capSec: u64 = 0;      // seconds since the epoch
export let capUsec: u32 = 0;     // microseconds within the second
export let capMs: f64 = 0;       // the virtual clock: milliseconds since the epoch

// The window: bytes [at, end) of the file are in memory; `fill` slides and refills it.
const WINDOW: usize = 8 << 20;
let buf: usize = 0;
let end: usize = 0;
let at: usize = 0;
let fd: i32 = -1;
let eof = false;
let ng = false;
let swap = false;          // the file's (or section's) byte order is big-endian
let nsec = false;          // classic pcap: nanosecond timestamps
let pcapLink: u32 = 0;

// pcapng: per interface of the current section, link type and timestamp units per second.
const MAX_IF = 64;
const ifLink = new StaticArray<u32>(MAX_IF);
const ifUnits = new StaticArray<u64>(MAX_IF);
let ifCount = 0;

// https://www.tcpdump.org/linktypes.html
export const LINK_NULL: u32 = 0;
export const LINK_ETHERNET: u32 = 1;
export const LINK_RAW: u32 = 101;
export const LINK_LINUX_SLL: u32 = 113;
export const LINK_IPV4: u32 = 228;
export const LINK_IPV6: u32 = 229;
export const LINK_LINUX_SLL2: u32 = 276;

@inline function u16at(p: usize): u32 { const v = load<u16>(p); return swap ? <u32>bswap<u16>(v) : <u32>v; }
@inline function u32at(p: usize): u32 { const v = load<u32>(p); return swap ? bswap<u32>(v) : v; }
@inline function be16(p: usize): u32 { return <u32>bswap<u16>(load<u16>(p)); }

function stop(msg: string): bool { capError = msg; at = end; eof = true; return false; }

// Makes at least `n` bytes available at `at` unless the file ends first (then false).
function fill(n: usize): bool {
  if (end - at >= n) return true;
  if (eof) return false;
  if (n > WINDOW) { stop("a record larger than 8 MiB"); return false; }
  const keep = end - at;
  memory.copy(buf, at, keep);
  at = buf; end = buf + keep;
  while (end - at < n && !eof) {
    const got = readInto(fd, end, buf + WINDOW - end);
    if (got < 0) { stop("read failed"); return false; }
    if (got == 0) eof = true;
    end += <usize>got;
  }
  return end - at >= n;
}

// A record of `n` bytes, or the reason it is not there: a clean end only between records.
function record(n: usize, what: string): i32 {
  if (fill(n)) return 1;
  if (capError.length > 0) return -1;
  if (at == end) return 0;
  stop(what);
  return -1;
}

/** Starts reading the capture from the open file `file`. False with capError set if it is neither format. */
export function capOpen(file: i32): bool {
  fd = file; capError = ""; ifCount = 0; eof = false;
  if (buf == 0) buf = heap.alloc(WINDOW);
  at = buf; end = buf;
  if (!fill(24)) return stop(capError.length > 0 ? capError : "not a pcap or pcapng capture (too short)");
  const p = at;
  const m = load<u32>(p);
  if (m == 0x0a0d0d0a) { ng = true; return true; }
  ng = false;
  if (m == 0xa1b2c3d4 || m == 0xa1b23c4d) swap = false;
  else if (m == 0xd4c3b2a1 || m == 0x4d3cb2a1) swap = true;
  else return stop("not a pcap or pcapng capture (unknown magic)");
  nsec = m == 0xa1b23c4d || m == 0x4d3cb2a1;
  pcapLink = u32at(p + 20) & 0x0fffffff;  // the upper bits carry the FCS length
  at = p + 24;
  return true;
}

function setTime(ts: u64, units: u64): void {
  capSec = ts / units;
  const frac = ts % units;
  capUsec = <u32>(frac * 1000000 / units);
  capMs = <f64>capSec * 1000 + <f64>frac * 1000 / <f64>units;
}

function nextPcap(): bool {
  if (record(16, "truncated record header") <= 0) return false;
  const incl = u32at(at + 8);
  if (record(16 + <usize>incl, "truncated packet record") <= 0) return false;
  const sec = u32at(at), sub = u32at(at + 4);
  setTime(<u64>sec * (nsec ? 1000000000 : 1000000) + sub, nsec ? 1000000000 : 1000000);
  capData = at + 16; capLen = incl; capLink = pcapLink;
  at += 16 + <usize>incl;
  return true;
}

// if_tsresol (pcapng §4.2): the byte's low 7 bits are a power of 10, or of 2 when the top bit is set.
function tsUnits(v: u32): u64 {
  const e = v & 0x7f;
  if (v & 0x80) return e < 63 ? <u64>1 << e : 0;
  let u: u64 = 1;
  for (let i: u32 = 0; i < e; i++) { if (u > 1000000000000000000) return 0; u *= 10; }
  return u;
}

function readIdb(b: usize, len: usize): bool {
  if (len < 20) return stop("truncated interface description block");
  if (ifCount >= MAX_IF) return stop("more than 64 interfaces in one section");
  let units: u64 = 1000000;
  let o = b + 16;
  const stopAt = b + len - 4;
  while (o + 4 <= stopAt) {
    const code = u16at(o), olen = u16at(o + 2);
    if (code == 0) break;
    if (o + 4 + <usize>olen > stopAt) return stop("interface option runs past its block");
    if (code == 9 && olen >= 1) units = tsUnits(<u32>load<u8>(o + 4));
    o += 4 + ((<usize>olen + 3) & ~3);
  }
  if (units == 0) return stop("unsupported if_tsresol");
  unchecked(ifLink[ifCount] = u16at(b + 8));
  unchecked(ifUnits[ifCount] = units);
  ifCount++;
  return true;
}

function nextNg(): bool {
  while (true) {
    if (record(12, "truncated block header") <= 0) return false;
    let type = load<u32>(at);
    if (type == 0x0a0d0d0a) {
      const bom = load<u32>(at + 8);
      if (bom == 0x1a2b3c4d) swap = false;
      else if (bom == 0x4d3c2b1a) swap = true;
      else return stop("bad section byte-order magic");
      ifCount = 0;
    } else if (swap) {
      type = bswap<u32>(type);
    }
    const len = <usize>u32at(at + 4);
    if (len < 12 || (len & 3) != 0) return stop("bad block length");
    if (record(len, "truncated block") <= 0) return false;
    const b = at;
    at += len;
    if (type == 1) {
      if (!readIdb(b, len)) return false;
    } else if (type == 6) {
      if (len < 32) return stop("truncated enhanced packet block");
      const ifc = u32at(b + 8);
      if (ifc >= <u32>ifCount) return stop("packet of an undeclared interface");
      const caplen = u32at(b + 20);
      if (<usize>caplen > len - 32) return stop("packet runs past its block");
      setTime(<u64>u32at(b + 12) << 32 | <u64>u32at(b + 16), unchecked(ifUnits[ifc]));
      capData = b + 28; capLen = caplen; capLink = unchecked(ifLink[ifc]);
      return true;
    } else if (type == 3) {
      if (len < 16) return stop("truncated simple packet block");
      if (ifCount == 0) return stop("packet before any interface");
      const orig = u32at(b + 8);
      const room = <u32>(len - 16);
      capData = b + 12; capLen = orig < room ? orig : room; capLink = unchecked(ifLink[0]);
      return true;   // no timestamp: the previous packet's time stands
    }
  }
}

/** Advances to the next packet. False at the end of the capture, or with capError set on damage. */
export function capNext(): bool {
  return ng ? nextNg() : nextPcap();
}

/** Offset of the IP header in the current packet, or -1 if it is not IPv4/IPv6 over a known link. */
export function capIpOffset(): i32 {
  const p = capData, n = capLen;
  let off: u32 = 0, ethertype: u32 = 0;
  switch (capLink) {
    case LINK_RAW: case LINK_IPV4: case LINK_IPV6: return n > 0 ? 0 : -1;
    case LINK_NULL: {
      if (n < 4) return -1;
      const fam = load<u32>(p);
      const f = fam > 0xffff ? bswap<u32>(fam) : fam;
      return f == 2 || f == 24 || f == 28 || f == 30 ? 4 : -1;
    }
    case LINK_ETHERNET: {
      if (n < 14) return -1;
      off = 14; ethertype = be16(p + 12);
      for (let tags = 0; tags < 2 && (ethertype == 0x8100 || ethertype == 0x88a8); tags++) {
        if (n < off + 4) return -1;
        ethertype = be16(p + off + 2); off += 4;
      }
      break;
    }
    case LINK_LINUX_SLL: { if (n < 16) return -1; off = 16; ethertype = be16(p + 14); break; }
    case LINK_LINUX_SLL2: { if (n < 20) return -1; off = 20; ethertype = be16(p); break; }
    default: return -1;
  }
  if (ethertype != 0x0800 && ethertype != 0x86dd) return -1;
  return off < n ? <i32>off : -1;
}
