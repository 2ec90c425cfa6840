// netfilter/format.ts — the binary form of an iptables chain as the host hands it to the core, and
// every number that form uses: table, hook and built-in chain ids, match and target op kinds, their
// argument layouts and flags, and the error codes staging and commit return. Constants only: the
// checks live in chain.ts, the meaning of each op in match*.ts and walk.ts. Never allocates.
//
// ─── Chains and ids ──────────────────────────────────────────────────────────────────────────────
// A chain is named by a numeric id the host assigns (host-node/netfilter/compile.ts keeps the
// name → id map). Ids 0..39 are the built-in chains, fixed:
//     id = (family == 6 ? 20 : 0) + table * 5 + hook
//     table: 0 raw, 1 mangle, 2 nat, 3 filter
//     hook:  0 PREROUTING, 1 INPUT, 2 FORWARD, 3 OUTPUT, 4 POSTROUTING
// Only the (table, hook) pairs Linux has exist: raw {PREROUTING, OUTPUT}; mangle {all five};
// nat {PREROUTING, INPUT, OUTPUT, POSTROUTING}; filter {INPUT, FORWARD, OUTPUT}. Built-in chains
// always exist (empty, policy ACCEPT, until staged) and cannot be deleted. User chains use ids
// 40..IPT_MAX_CHAINS-1; a user chain belongs to one family and one table for its whole life.
//
// ─── Chain blob (little-endian) ──────────────────────────────────────────────────────────────────
//   0 u32 magic  0x43545049 ("IPTC")
//   4 u16 version (1)
//   6 u8  family (4 or 6)
//   7 u8  table (0..3)
//   8 u32 flags: bit 0 = build the dispatch index for this chain (see dispatch.ts)
//  12 u32 rule count N (≤ IPT_MAX_RULES)
//  16 u32 op stream length W, in 32-bit words
//  20 u32 × 3 reserved, 0
//  32 N rule records of 12 bytes: u32 matchOff, u32 targetOff, u32 endOff — word offsets into the
//     op stream. Rule i's matches are the ops in [matchOff, targetOff), its target the single op in
//     [targetOff, endOff) (an empty target range means "no target": count and go on). Records
//     tile the stream: matchOff(0) = 0, matchOff(i+1) = endOff(i), endOff(N-1) = W.
//  32+12N  W words of ops.
// The blob is exactly 32 + 12N + 4W bytes.
//
// ─── Ops ─────────────────────────────────────────────────────────────────────────────────────────
// Each op starts with a header word: kind (bits 0–7) | flags (bits 8–15) | length in words
// including the header (bits 16–31). Flag bit 0 (OPF_INVERT) is iptables' `!`; only the kinds
// marked [!] accept it. Addresses are the core's four raw words (flow.ts: the little-endian loads
// of the address bytes; IPv4 uses word 0 and words 1–3 must be 0); a mask is an address of the
// same form. Ports are numbers; a port range packs lo | hi << 16 with lo ≤ hi.
// Matches (a rule matches when every match does, in order):
//   1  SRC      [!] addr[4] mask[4]                -s (addr must equal addr & mask)
//   2  DST      [!] addr[4] mask[4]                -d
//   3  PROTO    [!] proto                          -p (0..255; -p all compiles to nothing)
//   4  SPORT    [!] range                          --sport (packet must be TCP, UDP or SCTP)
//   5  DPORT    [!] range                          --dport
//   6  IIF      [!] name[4] mask[4]                -i: 16 name bytes and the compare mask
//   7  OIF      [!] name[4] mask[4]                -o  (iptables' ifname mask: `+` wildcard)
//   8  ADDRTYPE     srcMask | dstMask << 16, flags (bit 0 invert src, 1 invert dst,
//                   2 limit-iface-in, 3 limit-iface-out); masks use XT_ADDRTYPE_* bits
//   9  CTSTATE  [!] mask of CTS_* bits             --ctstate / --state
//  10  CT_ADDR  [!] which, addr[4], mask[4]        which: 0 origsrc 1 origdst 2 replsrc 3 repldst
//  11  CT_PORT  [!] which, range                   --ctorigsrcport … (which as above)
//  12  CT_STATUS[!] mask of status bits           --ctstatus (entry.ts CT_* bits)
//  13  CT_PROTO [!] proto                          --ctproto
//  14  CT_DIR   [!] dir (0 ORIGINAL, 1 REPLY)      --ctdir
//      (ops 10–14 fail when the packet has no connection, unless flag OPF_CT_NOCT_PASS is set:
//       the compiler sets it when the same `-m conntrack` also had --ctstate, as xt_conntrack
//       then returns the state test's result)
//  15  MARK     [!] value, mask                    -m mark --mark v/m
//  16  CONNMARK [!] value, mask                    -m connmark --mark v/m
//  17  RANDOM   [!] probability                    statistic --mode random: 31-bit threshold
//  18  NTH      [!] every-1, initial count, 0      statistic --mode nth (3rd word: core's slot)
//  19  LIMIT        avg, burst, 0                  avg in 1/10000 s per packet (XT_LIMIT_SCALE)
//  20  RECENT   [!] table id, flags, seconds, hitcount, mask[4]   flags RECENT_*
//  21  MULTIPORT[!] mode, count, range × count     mode 1 source, 2 destination, 3 either;
//                   count 1..15
//  22  SET      [!] set id, dims (bit i = dimension i+1 is dst), dim count
//                   (flag OPF_SET_RETURN_NOMATCH: --return-nomatch)
//  23  NFACCT       counter id
//  24  ICMP     [!] type | minCode << 8 | maxCode << 16 | any << 24, proto (1 or 58)
//  25  TCPFLAGS [!] mask | cmp << 8
//  26  FRAG     [!] (none)                        -f: a later fragment
// Targets (at most one per rule, last):
//  64  ACCEPT   65 DROP   66 RETURN   75 LOG   77 NOTRACK (raw table only)
//  67  JUMP     chain id              68 GOTO chain id
//  69  REJECT   code: ICMP/ICMPv6 destination-unreachable code, or REJECT_TCP_RESET
//  70  DNAT     natFlags, min[4], max[4], portMin | portMax << 16     (nat table only)
//  71  SNAT     same                                                   (nat table only)
//  72  MASQUERADE natFlags, portMin | portMax << 16                    (nat table only)
//  73  MARK     value, mask          xmark: mark = (mark & ~mask) ^ value
//  74  CONNMARK mode | shiftDir << 8 | shiftBits << 16, ctmark, ctmask, nfmask
//  76  NFLOG    group
//  78  REDIRECT natFlags, portMin | portMax << 16                      (nat table only)
// natFlags: NAT_MAP_IPS, NAT_PROTO_SPECIFIED, NAT_RANDOM, NAT_PERSISTENT, NAT_RANDOM_FULLY.
//
// ─── Errors ──────────────────────────────────────────────────────────────────────────────────────
// Control calls return 0 or a negative code: -(kind | op << 6 | (rule + 1) << 12), kind one of
// E_*, op the op's position within its rule (0..63), rule the rule index (rule + 1 = 0: not about a
// rule). iptLastError() points at { i32 code, u32 chain id, u32 rule, u32 op } for the last error.

export const IPT_MAGIC: u32 = 0x43545049;
export const IPT_VERSION: u16 = 1;
export const HDR_BYTES: u32 = 32;
export const RULE_BYTES: u32 = 12;

export const BLOB_F_INDEX: u32 = 1;

export const TABLE_RAW: u32 = 0;
export const TABLE_MANGLE: u32 = 1;
export const TABLE_NAT: u32 = 2;
export const TABLE_FILTER: u32 = 3;
export const TABLE_COUNT: u32 = 4;

export const HOOK_PREROUTING: u32 = 0;
export const HOOK_INPUT: u32 = 1;
export const HOOK_FORWARD: u32 = 2;
export const HOOK_OUTPUT: u32 = 3;
export const HOOK_POSTROUTING: u32 = 4;
export const HOOK_COUNT: u32 = 5;

export const BUILTIN_IDS: u32 = 40;
export const IPT_MAX_CHAINS: u32 = 1 << 20;
export const IPT_MAX_RULES: u32 = (1 << 19) - 2;
export const IPT_MAX_OPS_PER_RULE: u32 = 64;

// Which hooks each table has (bit per hook), as Linux registers them.
const TABLE_HOOKS: u32 = 0x9 | (0x1F << 5) | (0x1B << 10) | (0x0E << 15);

@inline export function tableHasHook(table: u32, hook: u32): bool {
  return table < TABLE_COUNT && hook < HOOK_COUNT && ((TABLE_HOOKS >> (table * 5 + hook)) & 1) != 0;
}

@inline export function builtinId(family: u8, table: u32, hook: u32): u32 {
  return (family == 6 ? 20 : 0) + table * 5 + hook;
}

// Is `id` one of the built-in chains that exist?
export function isBuiltin(id: u32): bool {
  if (id >= BUILTIN_IDS) return false;
  const r = id % 20;
  return tableHasHook(r / 5, r % 5);
}

@inline export function builtinFamily(id: u32): u8 { return id >= 20 ? 6 : 4; }
@inline export function builtinTable(id: u32): u32 { return (id % 20) / 5; }
@inline export function builtinHook(id: u32): u32 { return id % 5; }

// Op header.
@inline export function opKind(w: u32): u32 { return w & 0xFF; }
@inline export function opFlags(w: u32): u32 { return (w >> 8) & 0xFF; }
@inline export function opWords(w: u32): u32 { return w >>> 16; }

export const OPF_INVERT: u32 = 1;
export const OPF_CT_NOCT_PASS: u32 = 2;
// SET only: --return-nomatch (ip_set_core.c ip_set_test(): for the types with `nomatch`, a nomatch
// element answers yes and a plain one no).
export const OPF_SET_RETURN_NOMATCH: u32 = 2;

// Match kinds.
export const M_SRC: u32 = 1;
export const M_DST: u32 = 2;
export const M_PROTO: u32 = 3;
export const M_SPORT: u32 = 4;
export const M_DPORT: u32 = 5;
export const M_IIF: u32 = 6;
export const M_OIF: u32 = 7;
export const M_ADDRTYPE: u32 = 8;
export const M_CTSTATE: u32 = 9;
export const M_CT_ADDR: u32 = 10;
export const M_CT_PORT: u32 = 11;
export const M_CT_STATUS: u32 = 12;
export const M_CT_PROTO: u32 = 13;
export const M_CT_DIR: u32 = 14;
export const M_MARK: u32 = 15;
export const M_CONNMARK: u32 = 16;
export const M_RANDOM: u32 = 17;
export const M_NTH: u32 = 18;
export const M_LIMIT: u32 = 19;
export const M_RECENT: u32 = 20;
export const M_MULTIPORT: u32 = 21;
export const M_SET: u32 = 22;
export const M_NFACCT: u32 = 23;
export const M_ICMP: u32 = 24;
export const M_TCPFLAGS: u32 = 25;
export const M_FRAG: u32 = 26;
export const M_IPVS: u32 = 27;     // xt_ipvs (match-ipvs.ts)
export const M_PHYSDEV: u32 = 28;  // xt_physdev without bridge information (match-ipvs.ts)
export const M_LAST: u32 = 28;

// Target kinds.
export const T_FIRST: u32 = 64;
export const T_ACCEPT: u32 = 64;
export const T_DROP: u32 = 65;
export const T_RETURN: u32 = 66;
export const T_JUMP: u32 = 67;
export const T_GOTO: u32 = 68;
export const T_REJECT: u32 = 69;
export const T_DNAT: u32 = 70;
export const T_SNAT: u32 = 71;
export const T_MASQUERADE: u32 = 72;
export const T_MARK: u32 = 73;
export const T_CONNMARK: u32 = 74;
export const T_LOG: u32 = 75;
export const T_NFLOG: u32 = 76;
export const T_NOTRACK: u32 = 77;
export const T_REDIRECT: u32 = 78;
export const T_LAST: u32 = 78;

// Trace-only pseudo targets (never in a blob): what ended a chain.
export const T_POLICY_ACCEPT: u32 = 96;
export const T_POLICY_DROP: u32 = 97;
export const T_END_RETURN: u32 = 98;   // fell off the end of a user chain
export const T_DEPTH_DROP: u32 = 99;   // jump stack full (see walk.ts)

export const POLICY_ACCEPT: u32 = 0;
export const POLICY_DROP: u32 = 1;

// ctstate bits (M_CTSTATE): the values conntrack/state.ts gives packets, plus the NAT bits
// xt_conntrack adds from the connection's status.
export const CTS_INVALID: u32 = 1;
export const CTS_ESTABLISHED: u32 = 2;
export const CTS_RELATED: u32 = 4;
export const CTS_NEW: u32 = 8;
export const CTS_UNTRACKED: u32 = 16;
export const CTS_SNAT: u32 = 32;
export const CTS_DNAT: u32 = 64;

// xt_addrtype.h XT_ADDRTYPE_*: bit (1 << RTN_*) per route type.
export const AT_UNSPEC: u32 = 1 << 0;
export const AT_UNICAST: u32 = 1 << 1;
export const AT_LOCAL: u32 = 1 << 2;
export const AT_BROADCAST: u32 = 1 << 3;
export const AT_ANYCAST: u32 = 1 << 4;
export const AT_MULTICAST: u32 = 1 << 5;
export const AT_BLACKHOLE: u32 = 1 << 6;
export const AT_UNREACHABLE: u32 = 1 << 7;
export const AT_PROHIBIT: u32 = 1 << 8;
export const AT_THROW: u32 = 1 << 9;
export const AT_NAT: u32 = 1 << 10;
export const AT_XRESOLVE: u32 = 1 << 11;
export const AT_INV_SRC: u32 = 1;
export const AT_INV_DST: u32 = 2;
export const AT_LIMIT_IN: u32 = 4;
export const AT_LIMIT_OUT: u32 = 8;

// Recent flags (xt_recent.h XT_RECENT_* values, plus DEST for --rdest).
export const RECENT_CHECK: u32 = 1;
export const RECENT_SET: u32 = 2;
export const RECENT_UPDATE: u32 = 4;
export const RECENT_REMOVE: u32 = 8;
export const RECENT_TTL: u32 = 16;
export const RECENT_REAP: u32 = 32;
export const RECENT_DEST: u32 = 64;

export const MP_SOURCE: u32 = 1;
export const MP_DEST: u32 = 2;
export const MP_EITHER: u32 = 3;
export const MP_MAX_PORTS: u32 = 15;   // XT_MULTI_PORTS

// nf_nat.h NF_NAT_RANGE_* flags.
export const NAT_MAP_IPS: u32 = 1;
export const NAT_PROTO_SPECIFIED: u32 = 2;
export const NAT_RANDOM: u32 = 4;
export const NAT_PERSISTENT: u32 = 8;
export const NAT_RANDOM_FULLY: u32 = 16;
export const NAT_FLAGS_ALL: u32 = 31;

export const REJECT_TCP_RESET: u32 = 0xFFFF;

export const CONNMARK_SET: u32 = 0;
export const CONNMARK_SAVE: u32 = 1;
export const CONNMARK_RESTORE: u32 = 2;

// Error kinds.
export const E_MAGIC: u32 = 1;        // not a chain blob
export const E_VERSION: u32 = 2;
export const E_LENGTH: u32 = 3;       // blob length does not match its header, or lies outside memory
export const E_FAMILY: u32 = 4;
export const E_TABLE: u32 = 5;
export const E_RULES: u32 = 6;        // rule offsets do not tile the op stream
export const E_OP_LENGTH: u32 = 7;    // an op's length is wrong for its kind or runs past its rule
export const E_OP_KIND: u32 = 8;      // unknown kind, a match where the target goes or the reverse
export const E_OP_ARG: u32 = 9;       // an argument out of range
export const E_INVERT: u32 = 10;      // `!` on an op that has none
export const E_TARGET_TABLE: u32 = 11;// target not allowed in this table
export const E_CHAIN_ID: u32 = 12;    // id out of range, not a built-in, or family/table changed
// 13: not used (loops are the host's to refuse: those a built-in chain reaches, as the kernel does).
export const E_JUMP_BUILTIN: u32 = 14;// jump or goto to a built-in chain
export const E_JUMP_MISSING: u32 = 15;// commit: jump target does not exist after the commit
export const E_JUMP_MISMATCH: u32 = 16;// commit: jump target in another family or table
export const E_IN_USE: u32 = 17;      // commit: deleting a chain still referenced
export const E_NO_MEMORY: u32 = 18;
export const E_BUILTIN_DELETE: u32 = 19;
export const E_TOO_MANY_OPS: u32 = 20;// more than IPT_MAX_OPS_PER_RULE ops in a rule
export const E_POLICY: u32 = 21;      // policy on a user chain, or not ACCEPT/DROP

// The negative code for an error about op `op` of rule `rule` (rule -1: the chain as a whole).
@inline export function errCode(kind: u32, rule: i32, op: u32): i32 {
  return -<i32>(kind | ((op & 63) << 6) | (<u32>(rule + 1) << 12));
}
