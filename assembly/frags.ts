// frags.ts — a fragmented datagram followed through the core without reassembling it. Linux
// reassembles before conntrack (nf_defrag_ipv4 / nf_defrag_ipv6), so the rules, NAT and the
// connection see one datagram, and its fragments leave rewritten alike. This core classifies the
// first fragment, which alone carries the ports, and remembers what became of it: a later
// fragment of the same datagram (the same addresses, protocol and identification as it arrived)
// leaves with the addresses the first one left with, under its verdict. A later fragment with
// nothing to follow — its first was dropped or answered, never came, came after it, or is older
// than ipfrag_time (30 s) — is dropped, as before. One fixed table, made at start; never
// allocates, never reads a clock, never looks at the fragments' payload.
import { Flow, FAMILY_V4 } from "./flow";
import { setSrc, setDst } from "./nat/rewrite";

const SLOTS: u32 = 256;                 // datagrams in flight at once, a power of two
const PROBE: u32 = 8;
const SLOT: usize = 80;
// net.ipv4.ipfrag_time and net.ipv6.ip6frag_time default (include/net/ip.h IP_FRAG_TIME).
const FRAG_TIME_MS: u32 = 30 * 1000;

// Slot: 0 u32 expiry (ms, wraps; 0 with family 0 = free), 4 u8 family, 5 u8 proto, 6 u8 verdict,
// 8 u32 identification, 16 the arriving source and destination words (8 × u32), 48 the leaving
// ones (8 × u32).
const table: usize = heap.alloc(<usize>SLOTS * SLOT);
memory.fill(table, 0, <usize>SLOTS * SLOT);

// The first fragment's key, taken as it arrived (before any rewrite).
const key: usize = heap.alloc(48);

@inline function slotAt(i: u32): usize { return table + <usize>(i & (SLOTS - 1)) * SLOT; }

function hashKey(family: u8, proto: u8, id: u32, k: usize): u32 {
  let h: u32 = (<u32>family << 24) ^ (<u32>proto << 16) ^ id;
  for (let i: usize = 0; i < 32; i += 4) h = (h ^ load<u32>(k + 16 + i)) * 0x9E3779B1;
  return h ^ (h >> 15);
}

function writeAddrs(at: usize, f: Flow): void {
  store<u32>(at, f.s0); store<u32>(at, f.s1, 4); store<u32>(at, f.s2, 8); store<u32>(at, f.s3, 12);
  store<u32>(at, f.d0, 16); store<u32>(at, f.d1, 20); store<u32>(at, f.d2, 24); store<u32>(at, f.d3, 28);
}

function sameKey(s: usize, f: Flow): bool {
  if (load<u8>(s, 4) != f.family || load<u8>(s, 5) != f.proto || load<u32>(s, 8) != f.fragId) return false;
  return ((load<u32>(s, 16) ^ f.s0) | (load<u32>(s, 20) ^ f.s1) | (load<u32>(s, 24) ^ f.s2) | (load<u32>(s, 28) ^ f.s3) |
    (load<u32>(s, 32) ^ f.d0) | (load<u32>(s, 36) ^ f.d1) | (load<u32>(s, 40) ^ f.d2) | (load<u32>(s, 44) ^ f.d3)) == 0;
}

// Slot `s` holds the datagram whose key fragKey() took.
function keyIn(s: usize): bool {
  if ((load<u32>(s, 4) & 0xFFFF) != (load<u32>(key) & 0xFFFF) || load<u32>(s, 8) != load<u32>(key, 8)) return false;
  for (let i: usize = 16; i < 48; i += 4) if (load<u32>(s + i) != load<u32>(key + i)) return false;
  return true;
}

@inline function live(s: usize, now: u32): bool {
  return load<u8>(s, 4) != 0 && <i32>(load<u32>(s) - now) > 0;
}

/** Takes the key of first fragment `f` as it arrives, for fragRemember() once its verdict is known. */
export function fragKey(f: Flow): void {
  store<u8>(key, f.family); store<u8>(key, f.proto, 1); store<u32>(key, f.fragId, 8);
  writeAddrs(key + 16, f);
}

/**
 * The first fragment fragKey() took left the core with `verdict` (FORWARD or PASS) as `f` now
 * describes it: its later fragments will follow. A full probe window gives up its oldest slot.
 */
export function fragRemember(f: Flow, verdict: u8, now: u32): void {
  const family = load<u8>(key), proto = load<u8>(key, 1), id = load<u32>(key, 8);
  const h = hashKey(family, proto, id, key);
  let at = slotAt(h);
  for (let i: u32 = 0; i < PROBE; i++) {
    const s = slotAt(h + i);
    // A first fragment sent again takes its own slot back.
    if (!live(s, now) || keyIn(s)) { at = s; break; }
    if (<i32>(load<u32>(s) - load<u32>(at)) < 0) at = s;
  }
  store<u32>(at, now + FRAG_TIME_MS);
  store<u8>(at, family, 4); store<u8>(at, proto, 5); store<u8>(at, verdict, 6);
  store<u32>(at, id, 8);
  memory.copy(at + 16, key + 16, 32);
  writeAddrs(at + 48, f);
}

/**
 * Later fragment `f`: rewritten to the addresses its first fragment left with; returns that
 * fragment's verdict, or -1 when there is nothing to follow.
 */
export function fragFollow(f: Flow, now: u32): i32 {
  store<u8>(key, f.family); store<u8>(key, f.proto, 1); store<u32>(key, f.fragId, 8);
  writeAddrs(key + 16, f);
  const h = hashKey(f.family, f.proto, f.fragId, key);
  for (let i: u32 = 0; i < PROBE; i++) {
    const s = slotAt(h + i);
    if (!live(s, now) || !sameKey(s, f)) continue;
    const o = s + 48;
    const v4 = f.family == FAMILY_V4;
    if (v4 ? load<u32>(o) != f.s0 : ((load<u32>(o) ^ f.s0) | (load<u32>(o, 4) ^ f.s1) | (load<u32>(o, 8) ^ f.s2) | (load<u32>(o, 12) ^ f.s3)) != 0) {
      setSrc(f, load<u32>(o), load<u32>(o, 4), load<u32>(o, 8), load<u32>(o, 12), 0);
    }
    if (v4 ? load<u32>(o, 16) != f.d0 : ((load<u32>(o, 16) ^ f.d0) | (load<u32>(o, 20) ^ f.d1) | (load<u32>(o, 24) ^ f.d2) | (load<u32>(o, 28) ^ f.d3)) != 0) {
      setDst(f, load<u32>(o, 16), load<u32>(o, 20), load<u32>(o, 24), load<u32>(o, 28), 0);
    }
    return <i32>load<u8>(s, 6);
  }
  return -1;
}
