// ipvs/icmp.ts — ICMP errors about IPVS connections (net/netfilter/ipvs/ip_vs_core.c
// ip_vs_out_icmp / ip_vs_in_icmp and their IPv6 twins): only destination unreachable, source quench
// and time exceeded (ICMPv6: destination unreachable, packet too big, time exceeded), quoting a TCP,
// UDP or SCTP packet of a known entry.
//   from the inside (the real server or a router before it), about a packet the client sent: the
//     entry must be masqueraded; the outer source and the quoted destination become the virtual
//     address:port again (ip_vs_nat_icmp, inout = 1) and the error goes on to the client;
//   from the outside, about a reply the client got: masquerading puts the real server back as outer
//     destination and quoted source (ip_vs_nat_icmp, inout = 0); direct routing forwards it unchanged
//     and a tunnel encapsulates it (ip_vs_icmp_xmit → cp->packet_xmit).
// The rewrite goes through nat/rewrite.ts, which also fixes the quoted transport checksum — the
// kernel leaves that one stale and recomputes only the ICMP checksum; receivers do not check it.
// Never allocates.
import { Flow, inner, FAMILY_V4, PROTO_TCP, PROTO_UDP, PROTO_SCTP } from "../flow";
import { VERDICT_FORWARD, R_NONE } from "../verdict";
import { setSrc, setDst, setInnerSrc, setInnerDst } from "../nat/rewrite";
import { NIL, FWD_MASQ, FWD_MASK, count, IC_PACKETS, IC_OUT_PACKETS } from "./defs";
import { destAt, destSvc } from "./dest";
import { connInGet, connOutGet, connDest, connFlags, connAt, connVport, connDport, connState, C_VADDR } from "./conn";
import { inStats, outStats } from "./est";
import { resultFor, resultSet, RF_REPLY } from "./xmit";
import { transmit, finish } from "./core";

// ICMP types IPVS relays (ip_vs_in_icmp: ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_TIME_EXCEEDED;
// ip_vs_in_icmp_v6: ICMPV6_DEST_UNREACH, ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEED).
// @ts-ignore: decorator
@inline function relayed(family: u8, type: u8): bool {
  if (family == FAMILY_V4) return type == 3 || type == 4 || type == 11;
  return type == 1 || type == 2 || type == 3;
}

/** An ICMP error `f` (quoted packet in `inner`); false when it concerns no IPVS connection. */
export function ipvsIcmp(d: usize, f: Flow, now: u32): bool {
  const q = inner;
  const proto = q.proto;
  if (!relayed(f.family, f.icmpType) || q.family == 0 || (proto != PROTO_TCP && proto != PROTO_UDP && proto != PROTO_SCTP)) return false;
  const fam = q.family;
  // The quoted packet went client → real server: an error from the inside (ip_vs_out_icmp).
  let c = connOutGet(fam, proto, q.d0, q.d1, q.d2, q.d3, q.dport, q.s0, q.s1, q.s2, q.s3, q.sport, now);
  if (c != NIL) {
    const dest = connDest(c);
    count(IC_PACKETS);
    count(IC_OUT_PACKETS);
    outStats(dest, f.len);
    const p = connAt(c) + C_VADDR;
    const v0 = load<u32>(p), v1 = load<u32>(p, 4), v2 = load<u32>(p, 8), v3 = load<u32>(p, 12);
    setInnerDst(f, q, v0, v1, v2, v3, connVport(c));
    setSrc(f, v0, v1, v2, v3, f.sport);
    const r = resultFor(d);
    resultSet(r, FWD_MASQ, RF_REPLY, connState(c), c, dest, destSvc(dest));
    store<u8>(r, 0, 1);
    finish(d, VERDICT_FORWARD, R_NONE, f.len, dest);
    return true;
  }
  // The quoted packet was a reply virtual service → client: an error from the outside (ip_vs_in_icmp).
  c = connInGet(fam, proto, q.d0, q.d1, q.d2, q.d3, q.dport, q.s0, q.s1, q.s2, q.s3, q.sport, now, false);
  if (c == NIL) return false;
  const dest = connDest(c);
  const fwd = <u8>(connFlags(c) & FWD_MASK);
  count(IC_PACKETS);
  inStats(dest, f.len);
  if (fwd == FWD_MASQ) {
    const a = destAt(dest);
    setInnerSrc(f, q, load<u32>(a), load<u32>(a, 4), load<u32>(a, 8), load<u32>(a, 12), connDport(c));
    setDst(f, load<u32>(a), load<u32>(a, 4), load<u32>(a, 8), load<u32>(a, 12), f.dport);
    resultSet(resultFor(d), fwd, 0, connState(c), c, dest, destSvc(dest));
    finish(d, VERDICT_FORWARD, R_NONE, f.len, dest);
    return true;
  }
  resultSet(resultFor(d), fwd, 0, connState(c), c, dest, destSvc(dest));
  transmit(d, f, dest, connDport(c), fwd);
  return true;
}
