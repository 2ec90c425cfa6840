// json.ts — writes the replay tool's JSON lines straight into an output buffer: ASCII literals,
// decimal integers, IPv4 dotted quads, IPv6 in RFC 5952 text (lower-case hex, the longest run of two
// or more zero groups as "::"), a parsed packet's tuple, and the core's names for verdicts, drop
// reasons, ctstate bits and TCP conntrack states. Never allocates: every name is a static string and
// every number is formatted digit by digit. Never decides anything about a packet.
import { Output } from "./files";
import { Flow, FAMILY_V4, PROTO_TCP, PROTO_UDP, PROTO_SCTP } from "../flow";

// Index = code (abi.ts VERDICTS / REASONS; conntrack/tcp.ts states), kept in the ABI's order.
const VERDICT_NAMES: StaticArray<string> = ["PASS", "FORWARD", "DROP", "REPLY"];
const REASON_NAMES: StaticArray<string> = [
  "none", "truncated", "bad_version", "bad_header", "fragment", "ext_limit", "conntrack_full",
  "conntrack_invalid", "no_endpoints", "policy", "nat_ports_exhausted", "too_big", "bad_slot",
  "ttl_exceeded", "no_service",
];
const TCP_STATE_NAMES: StaticArray<string> = [
  "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT",
  "CLOSE", "SYN_SENT2",
];
const IPVS_METHOD_NAMES: StaticArray<string> = ["masq", "local", "tunnel", "droute"];

const HEX = "0123456789abcdef";

export function ascii(o: Output, s: string): void {
  const n = s.length;
  const p = o.reserve(<usize>n);
  for (let i = 0; i < n; i++) store<u8>(p + <usize>i, <u8>s.charCodeAt(i));
  o.len += <usize>n;
}

@inline export function byte(o: Output, c: u8): void {
  store<u8>(o.reserve(1), c);
  o.len += 1;
}

export function uint(o: Output, v: u64): void {
  const p = o.reserve(20);
  let n: usize = 0;
  let t = v;
  do { n++; t /= 10; } while (t != 0);
  for (let i = n; i > 0; i--) { store<u8>(p + i - 1, <u8>(48 + v % 10)); v /= 10; }
  o.len += n;
}

/** `n` as exactly `width` digits (leading zeros). */
export function digits(o: Output, n: u32, width: i32): void {
  const p = o.reserve(<usize>width);
  for (let i = width - 1; i >= 0; i--) { store<u8>(p + <usize>i, <u8>(48 + n % 10)); n /= 10; }
  o.len += <usize>width;
}

function name(o: Output, names: StaticArray<string>, code: u32): void {
  byte(o, 34);
  if (code < <u32>names.length) ascii(o, unchecked(names[code])); else uint(o, code);
  byte(o, 34);
}

export function verdictName(o: Output, v: u32): void { name(o, VERDICT_NAMES, v); }
export function reasonName(o: Output, r: u32): void { name(o, REASON_NAMES, r); }
export function tcpStateName(o: Output, s: u32): void { name(o, TCP_STATE_NAMES, s); }
export function ipvsMethodName(o: Output, m: u32): void { name(o, IPVS_METHOD_NAMES, m); }

export function ctStateName(o: Output, bits: u32): void {
  byte(o, 34);
  if (bits == 1) ascii(o, "INVALID");
  else if (bits == 2) ascii(o, "ESTABLISHED");
  else if (bits == 4) ascii(o, "RELATED");
  else if (bits == 8) ascii(o, "NEW");
  else if (bits == 16) ascii(o, "UNTRACKED");
  else uint(o, bits);
  byte(o, 34);
}

// An address held as four raw words (flow.ts): the bytes in memory order are the network bytes.
function ipv4(o: Output, w: u32): void {
  for (let i: u32 = 0; i < 4; i++) {
    if (i > 0) byte(o, 46);
    uint(o, (w >>> (i * 8)) & 0xff);
  }
}

@inline function group(w0: u32, w1: u32, w2: u32, w3: u32, g: i32): u32 {
  const w = g < 2 ? w0 : g < 4 ? w1 : g < 6 ? w2 : w3;
  const half = (g & 1) == 0 ? w & 0xffff : w >>> 16;
  return <u32>bswap<u16>(<u16>half);
}

function ipv6(o: Output, w0: u32, w1: u32, w2: u32, w3: u32): void {
  // RFC 5952 §4.2: the longest run of at least two zero groups (the first on a tie) becomes "::".
  let bestAt = -1, bestLen = 1, runAt = -1;
  for (let g = 0; g <= 8; g++) {
    const zero = g < 8 && group(w0, w1, w2, w3, g) == 0;
    if (zero && runAt < 0) runAt = g;
    if (!zero && runAt >= 0) {
      if (g - runAt > bestLen) { bestAt = runAt; bestLen = g - runAt; }
      runAt = -1;
    }
  }
  for (let g = 0; g < 8; g++) {
    if (g == bestAt) { ascii(o, "::"); g += bestLen - 1; continue; }
    if (g > 0 && g != bestAt + bestLen) byte(o, 58);
    const v = group(w0, w1, w2, w3, g);
    let started = false;
    for (let s = 12; s >= 0; s -= 4) {
      const d = (v >>> s) & 0xf;
      if (d != 0 || started || s == 0) { byte(o, <u8>HEX.charCodeAt(d)); started = true; }
    }
  }
}

/** `"src":"…","dst":"…"` plus the ports for TCP, UDP and SCTP, and the protocol number. */
export function tuple(o: Output, f: Flow): void {
  ascii(o, "{\"proto\":");
  uint(o, f.proto);
  ascii(o, ",\"src\":\"");
  if (f.family == FAMILY_V4) ipv4(o, f.s0); else ipv6(o, f.s0, f.s1, f.s2, f.s3);
  ascii(o, "\",\"dst\":\"");
  if (f.family == FAMILY_V4) ipv4(o, f.d0); else ipv6(o, f.d0, f.d1, f.d2, f.d3);
  byte(o, 34);
  if (f.proto == PROTO_TCP || f.proto == PROTO_UDP || f.proto == PROTO_SCTP) {
    ascii(o, ",\"sport\":");
    uint(o, f.sport);
    ascii(o, ",\"dport\":");
    uint(o, f.dport);
  }
  byte(o, 125);
}
