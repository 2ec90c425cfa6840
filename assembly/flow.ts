// flow.ts — the parsed packet. `Tuple` is the part conntrack keys on; `Flow` adds where the headers
// sit in the packet. wire/ fills one Flow per packet (and a second for the header inside an ICMP
// error); everything after reads it and never re-parses. Never allocates: the instances live in
// memory reserved once at start-up.
//
// Addresses are kept as four raw 32-bit words loaded straight from the packet (network byte order
// in memory, so word values are byte-swapped on little-endian hosts). IPv4 uses word 0 only and
// keeps words 1–3 zero, so equality and hashing treat both families alike.

export const FAMILY_V4: u8 = 4;
export const FAMILY_V6: u8 = 6;

// IANA protocol numbers.
export const PROTO_ICMP: u8 = 1;
export const PROTO_TCP: u8 = 6;
export const PROTO_UDP: u8 = 17;
export const PROTO_ICMPV6: u8 = 58;
export const PROTO_SCTP: u8 = 132;

// Fragment kinds (Flow.frag).
export const FRAG_NONE: u8 = 0;
export const FRAG_FIRST: u8 = 1; // offset 0, more fragments follow: ports are present
export const FRAG_LATER: u8 = 2; // offset > 0: no L4 header in this packet

@unmanaged
export class Tuple {
  family: u8;
  proto: u8;
  // TCP/UDP/SCTP ports in host order; for ICMP echo both hold the identifier.
  sport: u16;
  dport: u16;
  // ICMP type for ICMP/ICMPv6 tuples (echo request vs reply share an entry), else 0.
  icmpType: u8;
  pad: u8;
  s0: u32; s1: u32; s2: u32; s3: u32;
  d0: u32; d1: u32; d2: u32; d3: u32;

  // Five 64-bit moves: a bulk memory.copy leaves wasm for a runtime call on every packet.
  @inline copyFrom(o: Tuple): void {
    const d = changetype<usize>(this), s = changetype<usize>(o);
    store<u64>(d, load<u64>(s), 0); store<u64>(d, load<u64>(s, 8), 8); store<u64>(d, load<u64>(s, 16), 16);
    store<u64>(d, load<u64>(s, 24), 24); store<u64>(d, load<u64>(s, 32), 32);
  }

  // The same connection seen from the other end.
  // `this` must not be `o`. Header word: family, proto, sport, dport, icmpType, pad (little-endian
  // bytes 0–7); the ports swap places and pad is cleared.
  @inline invertFrom(o: Tuple): void {
    const d = changetype<usize>(this), s = changetype<usize>(o);
    const h = load<u64>(s);
    store<u64>(d, (h & 0x00FF00000000FFFF) | ((h >> 16) & 0xFFFF0000) | ((h & 0xFFFF0000) << 16));
    store<u64>(d, load<u64>(s, 24), 8); store<u64>(d, load<u64>(s, 32), 16);
    store<u64>(d, load<u64>(s, 8), 24); store<u64>(d, load<u64>(s, 16), 32);
  }

  @inline equals(o: Tuple): bool {
    return this.family == o.family && this.proto == o.proto && this.sport == o.sport &&
      this.dport == o.dport && this.s0 == o.s0 && this.d0 == o.d0 &&
      ((this.s1 ^ o.s1) | (this.s2 ^ o.s2) | (this.s3 ^ o.s3) |
       (this.d1 ^ o.d1) | (this.d2 ^ o.d2) | (this.d3 ^ o.d3)) == 0;
  }
}

// copyFrom moves exactly these bytes (checked in builds with asserts, i.e. the testing cores).
assert(offsetof<Tuple>() == 40);

@unmanaged
export class Flow extends Tuple {
  pkt: usize;    // first byte of the IP header
  len: u32;      // bytes of packet present
  cap: u32;      // bytes the slot can hold (a rewrite or generated reply may grow up to this)
  l3len: u32;    // IP header length including IPv4 options / IPv6 extension headers
  l4len: u32;    // bytes from the L4 header to the end of the IP payload
  frag: u8;      // FRAG_*
  tcpFlags: u8;  // TCP flag byte (FIN=1 SYN=2 RST=4 PSH=8 ACK=16 …), 0 otherwise
  icmpCode: u8;
  ttl: u8;       // IPv4 TTL / IPv6 hop limit
  // ICMP/ICMPv6 error carrying the header of an earlier packet; `inner` holds that header's tuple.
  isIcmpError: bool;
  csumPartial: bool; // set by the host (TUN offload): L4 checksum holds the pseudo-header sum only
  pad2: u16;
  innerOff: u32;  // offset of the quoted IP header inside the packet (when isIcmpError)
  fragId: u32;    // identification of a fragment (IPv4 header, IPv6 fragment header), else 0
  pad3: u32;
}

// The two parse targets, reserved once.
export const flow: Flow = changetype<Flow>(heap.alloc(offsetof<Flow>()));
export const inner: Flow = changetype<Flow>(heap.alloc(offsetof<Flow>()));
