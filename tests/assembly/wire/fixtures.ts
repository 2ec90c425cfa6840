// Known-good packets from outside this project, so builder and parser are not only checked against
// each other. Each lists where it comes from; every checksum in them was verified independently.
import { hex } from './support';

// IPv4 TCP ACK with timestamps, real capture (dpkt test_eth_802dot1q, Ethernet/VLAN removed).
export const V4_TCP = hex(`4500 0034 3b64 4000 4006 b79b 8397 2081 8397 2015 0495 1770 51d4 ee9c 51a5 5b36
  8010 7c70 12c7 0000 0101 080a 0004 f0d4 0199 a3fd`);

// IPv4 ICMP echo request from Linux ping, real capture (dpkt test_frag, Ethernet removed).
export const V4_PING = hex(`4500 0054 0000 4000 4001 258d 0a00 008f 0a00 008e 0800 2ea0 01ff 2373 2048 4a4d
  0000 0000 7885 0200 0000 0000 1011 1213 1415 1617 1819 1a1b 1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
  2c2d 2e2f 3031 3233 3435 3637`);

// IPv4 ICMP echo request from a Cisco router, real capture (dpkt test_eth_mpls_stacked, MPLS removed).
export const V4_PING_CISCO = hex(`4500 0064 0050 0000 ff01 a706 0a1f 0001 0a22 0001 0800 bd11 0f65 12a0 0000 0000
  0053 9ee0 ${'abcd '.repeat(32)}`);

// IPv4 UDP "foobar" (dpkt test_ip; built by dpkt, checksum 0xbf35).
export const V4_UDP = hex('4500 0022 0000 0000 4011 72c0 0102 0304 0102 0304 006f 00de 000e bf35 666f 6f62 6172');

// ICMP destination unreachable (host administratively prohibited) quoting a TCP packet, real capture
// (dpkt test_icmp). The outer IPv4 header is ours (192.168.0.1 → 35.43.36.0, checksum 0x72e5
// computed by hand); the ICMP message and its checksum 0x6b19 are the captured ones.
export const V4_ICMP_ERR_IP = hex('4500 0044 0000 0000 4001 72e5 c0a8 0001 232b 2400');
export const V4_ICMP_ERR_MSG = hex(`030a 6b19 0000 0000 4500 0028 941f 0000 e306 99b4 232b 2400 de8e 8442 abd1 0050
  0035 e129 20d9 0000 0022 9bf0 e204 656b`);
export const V4_ICMP_ERR = Uint8Array.from([...V4_ICMP_ERR_IP, ...V4_ICMP_ERR_MSG]);

// IPv6 TCP SYN, real capture (dpkt test_ipg).
export const V6_TCP = hex(`6000 0000 0028 0640 fe80 0000 0000 0000 0211 24ff fe8c 11de fe80 0000 0000 0000
  02b0 d0ff fee1 8072 cdca 0016 0484 46d5 0000 0000 a002 ffff f809 0000 0204 05a0 0103 0300 0101 080a
  7d18 353f 0000 0000`);

// IPv6 UDP fe80::1 → ff02::1, ports 1 → 2 (smoltcp wire/ipv6.rs REPR_PACKET_BYTES, checksum 0x024e).
export const V6_UDP = hex(`6000 0000 000c 1140 fe80 0000 0000 0000 0000 0000 0000 0001 ff02 0000 0000 0000
  0000 0000 0000 0001 0001 0002 000c 024e ffff ffff`);

// ICMPv6 echo request fe80::1 → fe80::2, id 0x1234 seq 0xabcd (smoltcp wire/icmpv6.rs ECHO_PACKET_BYTES).
export const V6_ECHO_MSG = hex('8000 19b3 1234 abcd aa00 00ff');
// ICMPv6 packet too big (MTU 1500) fe80::1 → fe80::2 quoting a UDP packet (smoltcp PKT_TOO_BIG_BYTES).
export const V6_PTB_MSG = hex(`0200 0fc9 0000 05dc 6000 0000 000c 1140 fe80 0000 0000 0000 0000 0000 0000 0001
  fe80 0000 0000 0000 0000 0000 0000 0002 bf00 0035 000c 124d aa00 00ff`);
export const LL1 = 'fe80::1';
export const LL2 = 'fe80::2';

// SCTP common header + INIT chunk, Wireshark sample capture sctp-www.cap (as in dpkt's SCTP tests).
export const SCTP_INIT_SEG = hex(`8044 0050 0000 0000 30ba ef54 0100 003c 3bb9 9c46 0001 a000 000a ffff 2b2d 7eb2
  0005 0008 9be6 189b 0005 0008 9be6 189c 000c 0006 0005 0000 8000 0004 c000 0004 c006 0008 0000 0000`);

/** An IPv6 header (hop limit 64) in front of `l4`, for messages known without their IP header. */
export function v6Header(src: Uint8Array, dst: Uint8Array, next: number, l4: Uint8Array): Uint8Array {
  const h = new Uint8Array(40 + l4.length);
  h[0] = 0x60;
  h[4] = l4.length >> 8; h[5] = l4.length & 0xff;
  h[6] = next; h[7] = 64;
  h.set(src, 8); h.set(dst, 24); h.set(l4, 40);
  return h;
}

/** An IPv4 header (TTL 64, header checksum filled) in front of `l4`. */
export function v4Header(src: Uint8Array, dst: Uint8Array, proto: number, l4: Uint8Array): Uint8Array {
  const b = new Uint8Array(20 + l4.length);
  b[0] = 0x45;
  b[2] = b.length >> 8; b[3] = b.length & 0xff;
  b[8] = 64; b[9] = proto;
  b.set(src, 12); b.set(dst, 16); b.set(l4, 20);
  let acc = 0;
  for (let i = 0; i < 20; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  b[10] = (~acc >> 8) & 0xff; b[11] = ~acc & 0xff;
  return b;
}
