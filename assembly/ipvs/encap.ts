// ipvs/encap.ts — the headers IPVS tunnel mode puts between the outer IP header and the inner
// packet for its GUE and GRE tunnel types (ip_vs_xmit.c ipvs_gue_encap / ipvs_gre_encap, set per
// real server with ipvsadm --tun-type gue|gre, --tun-port, --tun-nocsum|--tun-csum|--tun-remcsum):
//   GUE  UDP header (source port from a seeded hash of the inner flow in the local port range
//        32768–60999, as udp_flow_src_port(); destination the tunnel port) and a 4-byte GUE header
//        (version 0, control 0, hlen 0, proto_ctype IPPROTO_IPIP / IPPROTO_IPV6, flags 0). The UDP
//        checksum is computed with --tun-csum or --tun-remcsum (udp_set_csum), else 0. Remote
//        checksum offload's private option applies only to packets whose checksum is left to the
//        device (CHECKSUM_PARTIAL); this dataplane hands out complete packets, so --tun-remcsum
//        encapsulates like --tun-csum.
//   GRE  4 bytes: flags (GRE_CSUM with --tun-csum) and the inner protocol (ETH_P_IP / ETH_P_IPV6),
//        plus checksum and reserved words with GRE_CSUM (gre_build_header); the checksum covers the
//        GRE header and the inner packet.
// xmit.ts tunnel() makes the room and writes the outer IP header; these write only the middle.
// Never allocates.
import { Flow, FAMILY_V4 } from "../flow";
import { sumBytes, finish } from "../wire/checksum";
import { TUN_GUE, TUN_GRE, TUNF_CSUM, TUNF_REMCSUM } from "./defs";

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
export const IPPROTO_UDP: u8 = 17;
export const IPPROTO_GRE: u8 = 47;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const GRE_CSUM: u16 = 0x8000;
// inet_get_local_port_range() defaults (net.ipv4.ip_local_port_range).
const PORT_MIN: u32 = 32768;
const PORT_MAX: u32 = 60999;

let seed: u32 = 0;
export function setEncapSeed(s: u32): void { seed = s; }

/** Bytes the tunnel type puts after the outer IP header. */
export function encapLen(type: u32, flags: u32): u32 {
  if (type == TUN_GUE) return 8 + 4;
  if (type == TUN_GRE) return (flags & TUNF_CSUM) != 0 ? 8 : 4;
  return 0;
}

// @ts-ignore: decorator
@inline function mix(h: u32, v: u32): u32 {
  h ^= v;
  h ^= h >>> 16; h *= 0x7FEB352D;
  h ^= h >>> 15; h *= 0x846CA68B;
  return h ^ (h >>> 16);
}

// udp_flow_src_port(): the flow hash scaled into the local port range.
function flowPort(f: Flow): u16 {
  let h = mix(seed, f.s0); h = mix(h, f.d0);
  if (f.family != FAMILY_V4) { h = mix(h, f.s1 ^ f.d1); h = mix(h, f.s2 ^ f.d2); h = mix(h, f.s3 ^ f.d3); }
  h = mix(h, (<u32>f.sport << 16) | <u32>f.dport);
  h = mix(h, <u32>f.proto);
  return <u16>(<u32>((<u64>h * <u64>(PORT_MAX - PORT_MIN)) >> 32) + PORT_MIN);
}

/**
 * Writes the encapsulation at `at` (right after the outer header of family `outerAf`, whose
 * addresses are at `src`/`dst`) for an inner packet of `innerLen` bytes described by `f`. Returns
 * the outer header's next protocol.
 */
export function encapWrite(at: usize, type: u32, flags: u32, port: u16, f: Flow, innerLen: u32,
    outerAf: u8, src: usize, dst: usize): u8 {
  const inner4 = f.family == FAMILY_V4;
  if (type == TUN_GRE) {
    const csum = (flags & TUNF_CSUM) != 0;
    store<u16>(at, bswap<u16>(csum ? GRE_CSUM : 0));
    store<u16>(at, bswap<u16>(inner4 ? ETH_P_IP : ETH_P_IPV6), 2);
    if (csum) {
      store<u32>(at, 0, 4);
      store<u16>(at, finish(sumBytes(at, 8 + innerLen, 0)), 4);
    }
    return IPPROTO_GRE;
  }
  // GUE: UDP, then the GUE base header.
  const udpLen = 8 + 4 + innerLen;
  store<u16>(at, bswap<u16>(flowPort(f)));
  store<u16>(at, bswap<u16>(port), 2);
  store<u16>(at, bswap<u16>(<u16>udpLen), 4);
  store<u16>(at, 0, 6);
  store<u8>(at + 8, 0);   // hlen 0, control 0, version 0
  store<u8>(at + 9, inner4 ? IPPROTO_IPIP : IPPROTO_IPV6);
  store<u16>(at + 10, 0);
  if ((flags & (TUNF_CSUM | TUNF_REMCSUM)) != 0) {
    const alen: u32 = outerAf == FAMILY_V4 ? 4 : 16;
    let acc = sumBytes(src, alen, 0);
    acc = sumBytes(dst, alen, acc);
    acc += <u64>(<u32>IPPROTO_UDP << 8);
    acc += <u64>bswap<u16>(<u16>(udpLen & 0xFFFF)) + <u64>bswap<u16>(<u16>(udpLen >>> 16));
    let c = finish(sumBytes(at, udpLen, acc));
    if (c == 0) c = 0xFFFF;   // CSUM_MANGLED_0
    store<u16>(at, c, 6);
  }
  return IPPROTO_UDP;
}
