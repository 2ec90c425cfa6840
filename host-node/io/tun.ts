// tun.ts — a Linux TUN device driven through the core's batch I/O arena: open (or attach to) a
// device with TUNSETIFF (IFF_TUN | IFF_NO_PI, non-blocking; with offloads also IFF_VNET_HDR and
// TUNSETOFFLOAD), read whatever is queued straight into fixed arena slots, run one
// core.processBatch over the batch, and write every packet the core kept (FORWARD, PASS, REPLY)
// back to the device for the kernel to route. No allocation per packet: reads and writes go
// through one view per slot, made once (koffi passes a view's memory as is). Never decides
// anything about a packet (the core does), never configures routes or addresses (the caller
// does), never touches a namespace other than the one it is asked to open the device in.
//
// Offloads: the kernel then hands over TCP super-packets up to 64 KiB (GSO) and packets whose L4
// checksum the device is to finish (CHECKSUM_PARTIAL), each behind a struct virtio_net_hdr
// (include/uapi/linux/virtio_net.h). The header stays in the slot in front of the packet and is
// written back with it, so the kernel segments and checksums on the way out
// (include/linux/virtio_net.h virtio_net_hdr_to_skb / virtio_net_hdr_from_skb).
import koffi from 'koffi';
import type { Dataplane } from '../core/dataplane.js';
import { DESC, REASONS, META_CSUM_PARTIAL, META_CSUM_VALID, META_TRACKED_ONLY } from '../core/abi.js';

// A cluster DNS query for a name outside the zone, left in its slot for the host's forwarder (ABI.md §12).
const REASON_DNS_UPSTREAM = REASONS.indexOf('dns_upstream');

// <linux/if_tun.h>: TUNSETIFF = _IOW('T', 202, int); IFF_TUN / IFF_NO_PI flags.
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
// TUNSETOFFLOAD = _IOW('T', 208, unsigned int), its flags passed by value; TUNSETVNETHDRSZ =
// _IOW('T', 216, int) through a pointer. TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 (no UFO/USO: UDP GSO
// is segmented by the kernel before the device, and virtio_net_hdr_from_skb refuses it anyway).
const TUNSETOFFLOAD = 0x400454d0;
const TUNSETVNETHDRSZ = 0x400454d8;
const TUN_F_OFFLOADS = 0x1 | 0x2 | 0x4;
/**
 * Bytes of virtio header in front of every packet with offloads on: struct virtio_net_hdr (10)
 * padded to 12 as virtio_net_hdr_mrg_rxbuf, so the IP header that follows stays 4-byte aligned.
 */
export const VNET_HDR_BYTES = 12;
// struct virtio_net_hdr: u8 flags, u8 gso_type, le16 hdr_len, gso_size, csum_start, csum_offset.
const VNET_FLAGS = 0;
const VNET_GSO_TYPE = 1;
const VNET_CSUM_START = 6;
const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
const VIRTIO_NET_HDR_F_DATA_VALID = 2;
// <asm-generic/fcntl.h>, <sched.h>, <asm-generic/errno-base.h>
const O_RDONLY = 0;
const O_RDWR = 2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
const CLONE_NEWNET = 0x40000000;
const EINTR = 4;
const EAGAIN = 11;
const IFNAMSIZ = 16;
const IFREQ_BYTES = 40;

const VERDICT_DROP = 2; // abi.ts VERDICTS index
const VERDICT_REPLY = 3;

/** Each packet gets a fixed slot; 2 KiB holds an MTU-1500 packet or the largest generated reply (1344). */
export const TUN_SLOT_BYTES = 2048;
export const TUN_MAX_MTU = TUN_SLOT_BYTES;
/** With offloads a slot holds the virtio header and the largest IP packet (65,535), rounded up. */
export const TUN_OFFLOAD_SLOT_BYTES = 65536 + 256;

interface Libc {
  open(path: string, flags: number): number;
  close(fd: number): number;
  ioctl(fd: number, req: number, arg: Uint8Array): number;
  setns(fd: number, nstype: number): number;
  read(fd: number, buf: Uint8Array, n: number): number;
  write(fd: number, buf: Uint8Array, n: number): number;
  ioctlValue(fd: number, req: number, arg: number): number;
}

let libc: Libc | null = null;

function sys(): Libc {
  if (libc) return libc;
  const lib = koffi.load('libc.so.6');
  libc = {
    open: lib.func('int open(const char *path, int flags)'),
    close: lib.func('int close(int fd)'),
    ioctl: lib.func('int ioctl(int fd, unsigned long req, void *arg)'),
    // The same variadic ioctl for requests that take their argument by value (TUNSETOFFLOAD).
    ioctlValue: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']),
    setns: lib.func('int setns(int fd, int nstype)'),
    // koffi hands a typed array's own memory to C (no copy), so the core's memory is read and
    // written in place.
    read: lib.func('long read(int fd, void *buf, size_t n)'),
    write: lib.func('long write(int fd, const void *buf, size_t n)'),
  } as Libc;
  return libc;
}

/** The name of an errno value this module meets (opening the device, or waiting on it). */
export function errnoName(e: number): string {
  return { 1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 9: 'EBADF', 13: 'EACCES', 16: 'EBUSY', 19: 'ENODEV', 22: 'EINVAL' }[e] ?? `errno ${e}`;
}

export class TunError extends Error {
  constructor(readonly op: string, readonly errno: number) {
    super(`${op}: ${errnoName(errno)}`);
  }
}

export interface TunOpenOptions {
  /** Interface name (≤ 15 bytes); an existing persistent device of that name is attached to. */
  name: string;
  /** Open the device in this network namespace (e.g. /run/netns/NAME) instead of the caller's. */
  netnsPath?: string;
  /**
   * Checksum and TCP segmentation offload (IFF_VNET_HDR + TUNSETOFFLOAD): every read and write
   * carries a VNET_HDR_BYTES virtio header; TCP arrives in segments up to 64 KiB. Default off.
   */
  offload?: boolean;
}

/** Counters of one device's I/O (plain numbers, updated in place). */
export interface TunCounters {
  batches: number;
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  /** Packets the core dropped (its own counters name the reason). */
  dropped: number;
  /** With offloads: TCP super-packets (gso_type set) and packets with a partial L4 checksum read. */
  gsoPackets: number;
  csumPartial: number;
  /**
   * With offloads: packets that could not go back with their offload header (a super-packet the
   * core changed in length, e.g. IPVS tunnelling, which a virtio header cannot describe).
   */
  offloadDropped: number;
  readErrors: number;
  /** Writes the kernel refused (e.g. ENOBUFS, a packet it cannot route); the packet is lost. */
  writeErrors: number;
  lastErrno: number;
}

/**
 * An open TUN file descriptor. The fd is bound to the namespace it was opened in; reads and writes
 * work from any thread of any namespace afterwards.
 */
export class TunDevice {
  private closed = false;

  /**
   * @param vnetHdr bytes of virtio header in front of each packet read or written: VNET_HDR_BYTES
   *   with offloads, else 0.
   */
  private constructor(readonly fd: number, readonly name: string, readonly vnetHdr: number) {}

  static open(opts: TunOpenOptions): TunDevice {
    const name = opts.name;
    const nameBytes = new TextEncoder().encode(name);
    if (nameBytes.length === 0 || nameBytes.length >= IFNAMSIZ) throw new Error(`TUN name must be 1-15 bytes: ${JSON.stringify(name)}`);
    const c = sys();
    const fd = opts.netnsPath === undefined ? openTunHere(c) : inNetns(c, opts.netnsPath, () => openTunHere(c));
    // struct ifreq: char ifr_name[IFNAMSIZ]; short ifr_flags (first member of the union).
    const ifr = new Uint8Array(IFREQ_BYTES);
    ifr.set(nameBytes, 0);
    const offload = opts.offload === true;
    new DataView(ifr.buffer).setUint16(IFNAMSIZ, IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0), true);
    const fail = (op: string): never => {
      const e = koffi.errno();
      c.close(fd);
      throw new TunError(op, e);
    };
    if (c.ioctl(fd, TUNSETIFF, ifr) < 0) fail(`TUNSETIFF ${name}`);
    if (offload) {
      const sz = new Uint8Array(4);
      new DataView(sz.buffer).setInt32(0, VNET_HDR_BYTES, true);
      if (c.ioctl(fd, TUNSETVNETHDRSZ, sz) < 0) fail(`TUNSETVNETHDRSZ ${name}`);
      if (c.ioctlValue(fd, TUNSETOFFLOAD, TUN_F_OFFLOADS) < 0) fail(`TUNSETOFFLOAD ${name}`);
    }
    return new TunDevice(fd, name, offload ? VNET_HDR_BYTES : 0);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Reads one packet into `buf`: its length, 0 if none is queued, -errno on error. */
  read(buf: Uint8Array): number {
    const r = sys().read(this.fd, buf, buf.length);
    if (r >= 0) return r;
    const e = koffi.errno();
    return e === EAGAIN ? 0 : -e;
  }

  /**
   * Writes the first `n` bytes of `buf` as one packet: bytes written or -errno. With offloads the
   * bytes begin with the virtio header (see send()).
   */
  write(buf: Uint8Array, n: number): number {
    const r = sys().write(this.fd, buf, Math.min(n, buf.length));
    return r >= 0 ? r : -koffi.errno();
  }

  /**
   * Writes one whole IP packet with complete checksums (e.g. a DNS answer made on the host),
   * in front of it an all-zero virtio header when offloads are on: no GSO, nothing to finish.
   * Allocates; not for the per-packet path.
   */
  send(packet: Uint8Array): number {
    if (this.vnetHdr === 0) return this.write(packet, packet.length);
    const b = new Uint8Array(this.vnetHdr + packet.length);
    b.set(packet, this.vnetHdr);
    const w = this.write(b, b.length);
    return w >= 0 ? Math.max(0, w - this.vnetHdr) : w;
  }

  /** Closes the fd (a non-persistent device disappears with it). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    sys().close(this.fd);
  }
}

function openTunHere(c: Libc): number {
  const fd = c.open('/dev/net/tun', O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw new TunError('open /dev/net/tun', koffi.errno());
  return fd;
}

/**
 * Runs `fn` with this thread in another network namespace and always switches back. The TUN fd
 * remembers the namespace it was opened in (tun_chr_open takes current's net), so only the open
 * needs it. Should switching back fail the process is left in a namespace nobody expects: abort.
 */
function inNetns<T>(c: Libc, path: string, fn: () => T): T {
  const home = c.open('/proc/thread-self/ns/net', O_RDONLY | O_CLOEXEC);
  if (home < 0) throw new TunError('open /proc/thread-self/ns/net', koffi.errno());
  const target = c.open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    const e = koffi.errno();
    c.close(home);
    throw new TunError(`open ${path}`, e);
  }
  try {
    if (c.setns(target, CLONE_NEWNET) < 0) throw new TunError(`setns ${path}`, koffi.errno());
    try {
      return fn();
    } finally {
      if (c.setns(home, CLONE_NEWNET) < 0) {
        process.stderr.write(`svcplane: cannot return to the original network namespace (errno ${koffi.errno()})\n`);
        process.abort();
      }
    }
  } finally {
    c.close(target);
    c.close(home);
  }
}

/**
 * Runs `fn` with the calling thread in the network namespace at `path` (e.g. /run/netns/NAME) and
 * always switches back. Sockets and devices created synchronously inside `fn` stay in that
 * namespace for their whole life.
 */
export function withNetns<T>(path: string, fn: () => T): T {
  return inNetns(sys(), path, fn);
}

/**
 * Moves packets between one TUN device and one Dataplane's I/O arena. Slot k of a batch sits at
 * arena offset k × slotBytes; with offloads its first VNET_HDR_BYTES hold the virtio header and
 * the packet follows. The core may rewrite a packet in place or replace it with a reply up to the
 * slot's size.
 */
export class TunPump {
  readonly counters: TunCounters = {
    batches: 0, packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0, dropped: 0, gsoPackets: 0, csumPartial: 0,
    offloadDropped: 0, readErrors: 0, writeErrors: 0, lastErrno: 0,
  };
  readonly batchSize: number;
  /** Bytes per slot: TUN_SLOT_BYTES, or TUN_OFFLOAD_SLOT_BYTES with offloads. */
  readonly slotBytes: number;
  /** Virtio header bytes in front of each packet (0 without offloads). */
  private readonly hdr: number;
  private readonly descBase: number;
  private readonly dataBase: number;
  private readonly dataBytes: number;
  private buffer: ArrayBuffer | null = null;
  private dv!: DataView;
  private u8!: Uint8Array;
  /** slots[k] views batch slot k of the arena. */
  private slots: Uint8Array[] = [];
  /** Length of each slot's packet as read (offloads: to notice a packet the core grew). */
  private readonly lenIn: Uint32Array;
  /** A packet the core moved out of its slot is copied here behind its header (offloads only). */
  private moved: Uint8Array | null = null;
  /** Gets a copy of every packet the core dropped with reason dns_upstream (ProxyLoop's dnsForwarder). */
  onDnsUpstream: ((packet: Uint8Array) => void) | null = null;
  /** Marks packets steered in only for un-NAT as TRACKED_ONLY (ProxyLoopOptions.served). */
  served: { trackedOnly(b: Uint8Array, at: number, len: number): boolean } | null = null;

  constructor(readonly dp: Dataplane, readonly tun: TunDevice, batchSize = 64) {
    const core = dp.core;
    // A stand-in device (tests) may lack the field: no offloads.
    this.hdr = tun.vnetHdr ?? 0;
    this.slotBytes = this.hdr > 0 ? TUN_OFFLOAD_SLOT_BYTES : TUN_SLOT_BYTES;
    const maxByArena = Math.floor(core.ioDataBytes() / this.slotBytes);
    this.batchSize = Math.max(1, Math.min(batchSize, core.ioMaxBatch(), maxByArena));
    this.descBase = core.ioDescPtr();
    this.dataBase = core.ioDataPtr();
    this.dataBytes = core.ioDataBytes();
    this.lenIn = new Uint32Array(this.batchSize);
    this.renew();
  }

  /** Views of core memory (one per slot); renewed only when memory has grown. */
  private renew(): void {
    const buf = this.dp.core.memory.buffer;
    if (buf === this.buffer) return;
    this.buffer = buf;
    this.dv = new DataView(buf);
    this.u8 = new Uint8Array(buf);
    this.slots = [];
    for (let k = 0; k < this.batchSize; k++) {
      const at = this.dataBase + k * this.slotBytes;
      this.slots.push(this.u8.subarray(at, at + this.slotBytes));
    }
  }

  /**
   * Reads up to one batch of queued packets, runs the core over them at `nowMs`, and writes back
   * every packet it did not drop. Returns how many packets were read (0: the queue was empty).
   */
  pumpOnce(nowMs: number): number {
    this.renew();
    const t = this.tun;
    const c = this.counters;
    const dv = this.dv;
    const hdr = this.hdr;
    const slotBytes = this.slotBytes;
    let n = 0;
    while (n < this.batchSize) {
      const at = n * slotBytes;
      const r = t.read(this.slots[n]!);
      if (r === 0) break;
      if (r < 0) {
        if (-r === EINTR) continue;
        c.readErrors++;
        c.lastErrno = -r;
        break;
      }
      let meta = 0;
      if (hdr > 0) {
        if (r <= hdr) { c.readErrors++; continue; }
        const h = this.dataBase + at;
        if (this.u8[h + VNET_GSO_TYPE] !== 0) c.gsoPackets++;
        const flags = this.u8[h + VNET_FLAGS]!;
        if ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
          meta = META_CSUM_PARTIAL;
          c.csumPartial++;
        } else if ((flags & VIRTIO_NET_HDR_F_DATA_VALID) !== 0) {
          // The kernel checked it (CHECKSUM_UNNECESSARY): conntrack need not sum it again.
          meta = META_CSUM_VALID;
        }
        this.lenIn[n] = r - hdr;
      }
      if (this.served?.trackedOnly(this.u8, this.dataBase + at + hdr, r - hdr)) meta |= META_TRACKED_ONLY;
      const d = this.descBase + n * DESC.bytes;
      dv.setUint32(d + DESC.off, at + hdr, true);
      dv.setUint32(d + DESC.len, r - hdr, true);
      dv.setUint32(d + DESC.cap, slotBytes - hdr, true);
      dv.setUint32(d + DESC.meta, meta, true);
      c.bytesIn += r - hdr;
      n++;
    }
    if (n === 0) return 0;
    c.packetsIn += n;
    c.batches++;
    this.dp.core.processBatch(n, nowMs);
    this.renew();
    for (let k = 0; k < n; k++) {
      const d = this.descBase + k * DESC.bytes;
      const verdict = this.u8[d + DESC.verdict];
      if (verdict === VERDICT_DROP) {
        c.dropped++;
        if (this.onDnsUpstream && this.dv.getUint16(d + DESC.reason, true) === REASON_DNS_UPSTREAM) {
          const off = this.dataBase + this.dv.getUint32(d + DESC.off, true);
          this.onDnsUpstream(this.u8.slice(off, off + this.dv.getUint32(d + DESC.len, true)));
        }
        continue;
      }
      const off = this.dv.getUint32(d + DESC.off, true);
      const len = this.dv.getUint32(d + DESC.len, true);
      if (len === 0 || off + len > this.dataBytes) {
        c.dropped++;
        continue;
      }
      const w = hdr > 0 ? this.writeOffload(k, verdict!, off, len) : this.writePlain(k, off, len);
      if (w === 0) continue;
      if (w < 0) {
        c.writeErrors++;
        c.lastErrno = -w;
      } else {
        c.packetsOut++;
        c.bytesOut += w - hdr;
      }
    }
    return n;
  }

  private writePlain(k: number, off: number, len: number): number {
    // The core rewrites in place, so the packet is still in its slot; should it ever move one,
    // a one-off view (the only allocation here) carries it.
    return off === k * this.slotBytes && len <= this.slotBytes
      ? this.tun.write(this.slots[k]!, len)
      : this.tun.write(this.u8.subarray(this.dataBase + off, this.dataBase + off + len), len);
  }

  /**
   * Writes slot k's packet behind its virtio header. A packet rewritten in place keeps the header
   * it came with: NAT changes no length and keeps a partial checksum partial (ABI.md meta bit 1).
   * A reply the core generated has complete checksums and is one packet: its header is zeroed.
   * A packet that grew in front (tunnel encapsulation) moves csum_start along; a super-packet
   * that changed length cannot be described to the kernel and is dropped (offloadDropped).
   * Returns bytes written, -errno, or 0 when dropped here.
   */
  private writeOffload(k: number, verdict: number, off: number, len: number): number {
    const hdr = this.hdr;
    const slot = this.slots[k]!;
    const h = this.dataBase + k * this.slotBytes;
    const u8 = this.u8;
    if (verdict === VERDICT_REPLY) {
      u8.fill(0, h, h + hdr);
    } else if (len !== this.lenIn[k]) {
      if (u8[h + VNET_GSO_TYPE] !== 0) {
        this.counters.offloadDropped++;
        return 0;
      }
      if ((u8[h + VNET_FLAGS]! & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
        const start = this.dv.getUint16(h + VNET_CSUM_START, true) + len - this.lenIn[k]!;
        this.dv.setUint16(h + VNET_CSUM_START, start, true);
      }
    }
    if (off === k * this.slotBytes + hdr && len <= this.slotBytes - hdr) return this.tun.write(slot, hdr + len);
    // Moved out of its slot (no core path does this today): header and packet into one buffer.
    const m = this.moved ??= new Uint8Array(this.slotBytes);
    if (hdr + len > m.length) {
      this.counters.offloadDropped++;
      return 0;
    }
    m.set(u8.subarray(h, h + hdr), 0);
    m.set(u8.subarray(this.dataBase + off, this.dataBase + off + len), hdr);
    return this.tun.write(m, hdr + len);
  }
}
