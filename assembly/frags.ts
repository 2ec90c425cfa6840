// frags.ts — a fragmented datagram followed through the core without reassembling it. Linux
// reassembles before conntrack (nf_defrag_ipv4 / nf_defrag_ipv6), so the rules, NAT and the
// connection see one datagram, and its fragments leave rewritten alike. This core classifies the
// first fragment, which alone carries the ports, and remembers what became of it: a later
// fragment of the same datagram (the same addresses, protocol and identification as it arrived)
// leaves with the addresses the first one left with, under its verdict. A later fragment with
// nothing to follow — its first was dropped or answered, never came, came after it, or is older
// than ipfrag_time (30 s) — is dropped, as before. When IPVS forwarded the first fragment, its
// side record (the forwarding method, tunnel, next hop: ipvs/xmit.ts) is kept too, so a later one
// goes into the same tunnel or to the same real server. One fixed table, made at start; never
// allocates, never reads a clock, never looks at the fragments' payload.
import { Flow, FAMILY_V6 } from "./flow";
import { setSrc, setDst } from "./nat/rewrite";

const SLOTS: u32 = 256;                 // datagrams in flight at once, a power of two
const PROBE: u32 = 8;
const SLOT: usize = 112;
const SIDE: usize = 32;                 // ipvs/xmit.ts RESULT_BYTES
// net.ipv4.ipfrag_time and net.ipv6.ip6frag_time default (include/net/ip.h IP_FRAG_TIME).
const FRAG_TIME_MS: u32 = 30 * 1000;

// Slot: 0 u32 expiry (ms, wraps; 0 with family 0 = free), 4 u8 family, 5 u8 proto, 6 u8 verdict,
// 8 u32 identification, 16 the arriving source and destination words (8 × u32), 48 the leaving
// ones (8 × u32), 80 the first fragment's IPVS side record (its first byte 0xFF: none).
const table: usize = heap.alloc(<usize>SLOTS * SLOT);
memory.fill(table, 0, <usize>SLOTS * SLOT);

// The first fragment's key, taken as it arrived (before any rewrite).
const key: usize = heap.alloc(48);

@inline function slotAt(i: u32): usize { return table + <usize>(i & (SLOTS - 1)) * SLOT; }

// The key fragKey() took, hashed.
function hashKey(): u32 {
  let h: u32 = (load<u32>(key) & 0xFFFF) ^ load<u32>(key, 8);
  for (let i: usize = 16; i < 48; i += 4) h = (h ^ load<u32>(key + i)) * 0x9E3779B1;
  return h ^ (h >> 15);
}

function writeAddrs(at: usize, f: Flow): void {
  store<u32>(at, f.s0); store<u32>(at, f.s1, 4); store<u32>(at, f.s2, 8); store<u32>(at, f.s3, 12);
  store<u32>(at, f.d0, 16); store<u32>(at, f.d1, 20); store<u32>(at, f.d2, 24); store<u32>(at, f.d3, 28);
}

// Four address words at `a` equal those at `b`.
@inline function sameAddr(a: usize, b: usize): bool {
  return ((load<u32>(a) ^ load<u32>(b)) | (load<u32>(a, 4) ^ load<u32>(b, 4)) |
    (load<u32>(a, 8) ^ load<u32>(b, 8)) | (load<u32>(a, 12) ^ load<u32>(b, 12))) == 0;
}

// Slot `s` holds the datagram whose key fragKey() took.
function keyIn(s: usize): bool {
  return (load<u32>(s, 4) & 0xFFFF) == (load<u32>(key) & 0xFFFF) && load<u32>(s, 8) == load<u32>(key, 8) &&
    sameAddr(s + 16, key + 16) && sameAddr(s + 32, key + 32);
}

@inline function live(s: usize, now: u32): bool {
  return load<u8>(s, 4) != 0 && <i32>(load<u32>(s) - now) > 0;
}

/**
 * Takes the key of fragment `f` as it arrives: family, protocol, identification, addresses. IPv6
 * leaves the protocol out, as its reassembly does (ip6frag: addresses and identification): a first
 * fragment's protocol is the one after all its headers, a later one's only the fragment header's
 * next header, which differ when headers follow the fragment header.
 */
export function fragKey(f: Flow): void {
  store<u8>(key, f.family); store<u8>(key, f.family == FAMILY_V6 ? 0 : f.proto, 1); store<u32>(key, f.fragId, 8);
  writeAddrs(key + 16, f);
}

/**
 * The first fragment fragKey() took left the core with `verdict` (FORWARD or PASS) as `f` now
 * describes it: its later fragments will follow. A full probe window gives up its oldest slot.
 */
export function fragRemember(f: Flow, verdict: u8, now: u32, side: usize): void {
  const h = hashKey();
  let at = slotAt(h);
  for (let i: u32 = 0; i < PROBE; i++) {
    const s = slotAt(h + i);
    // A first fragment sent again takes its own slot back.
    if (!live(s, now) || keyIn(s)) { at = s; break; }
    if (<i32>(load<u32>(s) - load<u32>(at)) < 0) at = s;
  }
  store<u32>(at, now + FRAG_TIME_MS);
  store<u16>(at, load<u16>(key), 4);          // family, protocol
  store<u8>(at, verdict, 6);
  store<u32>(at, load<u32>(key, 8), 8);
  memory.copy(at + 16, key + 16, 32);
  writeAddrs(at + 48, f);
  if (side != 0) memory.copy(at + 80, side, SIDE);
  else store<u8>(at + 80, 0xFF);
}

let followed: usize = 0;

// The IPVS side record of the first fragment the last fragFollow() followed, or 0 when IPVS did
// not forward it.
export function fragSide(): usize {
  return followed != 0 && load<u8>(followed + 80) != 0xFF ? followed + 80 : 0;
}

/**
 * Later fragment `f`: rewritten to the addresses its first fragment left with; returns that
 * fragment's verdict, or -1 when there is nothing to follow.
 */
export function fragFollow(f: Flow, now: u32): i32 {
  fragKey(f);
  followed = 0;
  const h = hashKey();
  for (let i: u32 = 0; i < PROBE; i++) {
    const s = slotAt(h + i);
    if (!live(s, now) || !keyIn(s)) continue;
    // The slot holds the addresses the first fragment arrived with (16, 32) and left with (48, 64).
    if (!sameAddr(s + 16, s + 48)) setSrc(f, load<u32>(s, 48), load<u32>(s, 52), load<u32>(s, 56), load<u32>(s, 60), 0);
    if (!sameAddr(s + 32, s + 64)) setDst(f, load<u32>(s, 64), load<u32>(s, 68), load<u32>(s, 72), load<u32>(s, 76), 0);
    followed = s;
    return <i32>load<u8>(s, 6);
  }
  return -1;
}
