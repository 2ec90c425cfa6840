// ipset/format.ts — every number the ipset core and its host share: set type ids, create flags, the
// element buffer / stored record layout, return and error codes, limits. Constants and tiny pure
// helpers only: storage lives in store.ts, set semantics in set.ts, ids and staging in
// registry.ts, the packet path in lookup.ts. Never allocates.
//
// ─── Sets and ids ────────────────────────────────────────────────────────────────────────────────
// A set is named by a numeric id the host assigns (the same id iptables rules carry in their SET op,
// host-node/netfilter/compile.ts `set:NAME`). Ids are 0..IPSET_MAX_SETS-1. Names, comments and the
// text forms live in the host (host-node/ipset); the core holds what a packet needs.
//
// Types (the kernel's names; revision is the host's business):
//   1 hash:ip            dimension 1: ip                       (features IP)
//   2 hash:ip,port       dimension 2: ip, proto:port           (IP | PORT)
//   3 hash:ip,port,ip    dimension 3: ip, proto:port, ip2      (IP | PORT | IP2)
//   4 hash:ip,port,net   dimension 3: ip, proto:port, net2     (IP | PORT | IP2 | NOMATCH)
//   5 hash:net           dimension 1: net                      (IP | NOMATCH)
//   6 bitmap:port        dimension 1: port, family-neutral     (PORT)
// Features differ for every pair, so "swappable" (ip_set_core.c ip_set_swap(): same features and
// family) means: same type and family.
//
// ─── Element buffer and stored record (64 bytes, little-endian) ────────────────────────────────
//    0 u32 × 4  a      first address: ip (hash:ip*, the ip part) or net (hash:net), raw words as
//                      flow.ts keeps them (IPv4: word 0, words 1–3 zero)
//   16 u32 × 4  b      second address: ip2 (hash:ip,port,ip) or net2 (hash:ip,port,net), else 0
//   32 u16      port   host order (ICMP: type << 8 | code, ip_set_getport.c); bitmap:port: the port
//   34 u8       proto  IANA protocol (ip,port types), else 0
//   35 u8       cidr   prefix length of the net part (hash:net: a; hash:ip,port,net: b), else 0
//   ── the key is bytes 0..35 (KEY_WORDS words); the rest is per-element state ──
//   36 u8       flags  element buffer: EF_*; stored record: R_*
//   40 u32      element buffer: timeout in seconds (EF_TIMEOUT); record: expiry time in ms (R_EXPIRES)
//   48 u64      packets  (counters)
//   56 u64      bytes
// Addresses in the key are masked to their prefix; the host sends them masked (the core checks).
//
// ─── Calls ───────────────────────────────────────────────────────────────────────────────────────
// Control calls return 0 (test: TEST_*) or a negative -E_* code. Between ipsetBegin() and
// ipsetCommit() every change is made to staged copies that packets never see; commit swaps them in
// at once, abort drops them (registry.ts). Outside a transaction changes apply at once, one call at a
// time (as each `ipset add` does in the kernel).

export const IPSET_MAX_SETS: u32 = 1 << 16;

export const T_HASH_IP: u8 = 1;
export const T_HASH_IP_PORT: u8 = 2;
export const T_HASH_IP_PORT_IP: u8 = 3;
export const T_HASH_IP_PORT_NET: u8 = 4;
export const T_HASH_NET: u8 = 5;
export const T_BITMAP_PORT: u8 = 6;
export const T_LAST: u8 = 6;

// Create flags.
export const CF_TIMEOUT: u32 = 1;    // elements may expire (`timeout N` at create, N may be 0)
export const CF_COUNTERS: u32 = 2;   // per-element packet/byte counters
export const CF_COMMENT: u32 = 4;    // comments (kept by the host; accepted and ignored here)
export const CF_ALL: u32 = 7;

// Element buffer flags (byte 36 of the element buffer).
export const EF_NOMATCH: u8 = 1;     // hash:net / hash:ip,port,net `nomatch`
export const EF_TIMEOUT: u8 = 2;     // word 40 holds a timeout (seconds); else the set default
export const EF_PACKETS: u8 = 4;     // word 48 holds initial packets; else 0 (new) / kept (-exist)
export const EF_BYTES: u8 = 8;       // word 56 holds initial bytes

// Stored record flags.
export const R_USED: u8 = 1;
export const R_NOMATCH: u8 = 2;
export const R_EXPIRES: u8 = 4;      // word 40 is the expiry time; else permanent

export const REC_BYTES: usize = 64;
export const KEY_WORDS: u32 = 9;
export const O_A: usize = 0;
export const O_B: usize = 16;
export const O_PORT: usize = 32;
export const O_PROTO: usize = 34;
export const O_CIDR: usize = 35;
export const O_FLAGS: usize = 36;
export const O_TIME: usize = 40;
export const O_PACKETS: usize = 48;
export const O_BYTES: usize = 56;

// ip_set_timeout.h IPSET_MAX_TIMEOUT: (UINT_MAX >> 1) / MSEC_PER_SEC seconds. In ms this stays below
// 2^31, so `<i32>(now - expiry)` orders every expiry against now.
export const MAX_TIMEOUT_S: u32 = 2147483;

// Results of ipsetTest / ipsetGet.
export const TEST_ABSENT: i32 = 0;
export const TEST_PRESENT: i32 = 1;
export const TEST_NOMATCH: i32 = 2;  // found, but a `nomatch` element (the kernel's -ENOTEMPTY)

// Error kinds (returned negated).
export const E_NO_SET: i32 = 1;      // no set has this id
export const E_SET_EXISTS: i32 = 2;  // create over an existing id / rename onto one
export const E_EXIST: i32 = 3;       // add: element already there (IPSET_ERR_EXIST)
export const E_NOT_EXIST: i32 = 4;   // del: element not there
export const E_FULL: i32 = 5;        // maxelem reached (IPSET_ERR_HASH_FULL) or storage limit
export const E_RANGE: i32 = 6;       // bitmap:port element outside the range (IPSET_ERR_BITMAP_RANGE)
export const E_CIDR: i32 = 7;        // prefix 0 / above the host mask, or address not masked
export const E_TYPE_MISMATCH: i32 = 8;// swap of different types or families
export const E_ARG: i32 = 9;         // bad type, family, flag, option or element field
export const E_ID: i32 = 10;         // id out of range
export const E_NULL: i32 = 11;       // hash:ip zero address (IPSET_ERR_HASH_ELEM)
export const E_NO_TIMEOUT: i32 = 12; // timeout given, set has none (IPSET_ERR_TIMEOUT)
export const E_NO_COUNTERS: i32 = 13;// packets/bytes given, set has none (IPSET_ERR_COUNTER)
export const E_TXN: i32 = 14;        // begin inside a transaction, commit/abort outside one
export const E_PROTO: i32 = 15;      // port on a protocol without ports, or protocol 0

// Storage limits: a hash set holds at most MAX_SLOTS records (3/4 of them in use).
export const MAX_SLOTS: u32 = 1 << 22;
export const MIN_SLOTS: u32 = 16;

@inline export function dimensionOf(type: u8): u32 {
  return type == T_HASH_IP_PORT ? 2 : type == T_HASH_IP_PORT_IP || type == T_HASH_IP_PORT_NET ? 3 : 1;
}

@inline export function isHash(type: u8): bool { return type >= T_HASH_IP && type <= T_HASH_NET; }
@inline export function hasNets(type: u8): bool { return type == T_HASH_NET || type == T_HASH_IP_PORT_NET; }
@inline export function hasPort(type: u8): bool { return type >= T_HASH_IP_PORT && type <= T_HASH_IP_PORT_NET; }

// Where the net part of a net type sits in the key.
@inline export function netOffset(type: u8): usize { return type == T_HASH_NET ? O_A : O_B; }

@inline export function hostMask(family: u8): u32 { return family == 6 ? 128 : 32; }

// ip_set_getport.h ip_set_proto_with_ports().
@inline export function protoWithPorts(proto: u32): bool {
  return proto == 6 || proto == 17 || proto == 132 || proto == 136;
}
