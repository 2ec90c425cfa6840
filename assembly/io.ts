// io.ts — the batch I/O arena shared with the host: packet bytes plus one descriptor per packet.
// The host writes packets anywhere in the data area and describes each (offset, length, room);
// the core rewrites them in place and fills in verdict, reason and conntrack handle. Reserved
// once at start-up and never moved, so host views stay valid. Never parses or decides anything.

// Descriptor layout (32 bytes each, little-endian):
//   0 u32 off     data-area offset of the packet's IP header
//   4 u32 len     in: bytes present; out: bytes after rewrite or of the generated reply
//   8 u32 cap     bytes available at off (a reply may grow the packet up to this)
//  12 u32 meta    in: bit 0 = originates on this node (OUTPUT path), bit 1 = checksum partial
//                 (TUN offload), bits 8–15 = ingress interface index, bits 16–23 = egress
//                 interface index (0 = unknown; names set with iptSetIfName)
//  16 u8  verdict out (verdict.ts)
//  17 u8  ctstate out (conntrack state seen by this packet)
//  18 u16 reason  out
//  20 u32 mark    out: packet mark after processing
//  24 u32 ct      out: conntrack index or 0xFFFFFFFF
//  28 u32 aux     out: direct mode — the service id of a new flow; IPVS — the destination id;
//                 otherwise 0xFFFFFFFF
export const DESC_BYTES: u32 = 32;
export const D_OFF: u32 = 0;
export const D_LEN: u32 = 4;
export const D_CAP: u32 = 8;
export const D_META: u32 = 12;
export const D_VERDICT: u32 = 16;
export const D_CTSTATE: u32 = 17;
export const D_REASON: u32 = 18;
export const D_MARK: u32 = 20;
export const D_CT: u32 = 24;
export const D_AUX: u32 = 28;

export const META_LOCAL: u32 = 1;
export const META_CSUM_PARTIAL: u32 = 2;
// The host steered this packet here only so that a connection the core tracks can be un-NATed (an
// endpoint's reply routed into the device): one that belongs to no tracked connection, and is no
// ICMP error about one, leaves untouched (PASS) without being tracked or walking any rule.
export const META_TRACKED_ONLY: u32 = 4;
// The host has verified the transport checksum (TUN: VIRTIO_NET_HDR_F_DATA_VALID, the kernel's
// CHECKSUM_UNNECESSARY): conntrack does not verify it again.
export const META_CSUM_VALID: u32 = 8;

export const IO_MAX_BATCH: u32 = 1024;
export const IO_DATA_BYTES: u32 = 8 << 20; // room for a 1024-packet batch of 8 KiB slots, or fewer GSO ones

export let ioDesc: usize = 0;
export let ioData: usize = 0;

export function ioInit(): void {
  ioDesc = heap.alloc(<usize>(IO_MAX_BATCH * DESC_BYTES));
  ioData = heap.alloc(<usize>IO_DATA_BYTES);
  memory.fill(ioDesc, 0, <usize>(IO_MAX_BATCH * DESC_BYTES));
}
