// nat/masq.ts — picks the source port for a masqueraded (or SNATed) new flow. The client's own
// port is kept when the resulting reply tuple is free — the same client tuple always gets its own
// port back — otherwise a bounded search from a seeded random offset, as the kernel's
// nf_nat_l4proto_unique_tuple does (ranges 1–511 / 600–1023 / 1024–65535 by the original port,
// at most 128 tries, halving the tries on each retry round down to 16). Tuples of closed flows
// stay taken while conntrack holds them (TIME_WAIT 120 s), so a backend never sees a port reused
// too early (PAWS). Never rewrites packets.
import { Tuple, PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6 } from "../flow";
import { ctLookup, CT_NONE } from "../conntrack/table";
import { randBelow } from "../rand";

// `reply` arrives with every field set except dport (the port the backend will answer to; for
// ICMP the identifier, in both port fields).
// Returns false when no port is free.
// For ICMP the "port" is the echo identifier, which the reply tuple holds in both port fields.
@inline function setPort(reply: Tuple, port: u16, icmp: bool): void {
  reply.dport = port;
  if (icmp) reply.sport = port;
}

export function masqChoosePort(reply: Tuple, wanted: u16, now: u32): bool {
  const p = reply.proto;
  const icmp = p == PROTO_ICMP || p == PROTO_ICMPV6;
  const ported = p == PROTO_TCP || p == PROTO_UDP || p == PROTO_SCTP || icmp;
  setPort(reply, wanted, icmp);
  if (ctLookup(reply, now) == CT_NONE) return true;
  if (!ported) return false;
  let min: u32, size: u32;
  if (icmp) { min = 0; size = 65536; }
  else if (wanted < 512) { min = 1; size = 511; }
  else if (wanted < 1024) { min = 600; size = 424; }
  else { min = 1024; size = 64512; }
  let attempts: u32 = size < 128 ? size : 128;
  while (true) {
    let off = randBelow(size);
    for (let i: u32 = 0; i < attempts; i++) {
      setPort(reply, <u16>(min + off), icmp);
      if (ctLookup(reply, now) == CT_NONE) return true;
      off = off + 1 == size ? 0 : off + 1;
    }
    attempts >>= 1;
    if (attempts < 16) break;
  }
  setPort(reply, wanted, icmp);
  return false;
}
