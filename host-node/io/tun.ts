// tun.ts — a Linux TUN device driven through the core's batch I/O arena: open (or attach to) a
// device with TUNSETIFF (IFF_TUN | IFF_NO_PI, non-blocking), read whatever is queued straight into
// fixed arena slots, run one core.processBatch over the batch, and write every packet the core
// kept (FORWARD, PASS, REPLY) back to the device for the kernel to route. No allocation per packet:
// reads and writes go through one view per slot, made once (koffi passes a view's memory as is). Never decides anything about a
// packet (the core does), never configures routes or addresses (the caller does), never touches a
// namespace other than the one it is asked to open the device in.
import koffi from 'koffi';
import type { Dataplane } from '../core/dataplane.js';
import { DESC, REASONS } from '../core/abi.js';

// A cluster DNS query for a name outside the zone, left in its slot for the host's forwarder (ABI.md §12).
const REASON_DNS_UPSTREAM = REASONS.indexOf('dns_upstream');

// <linux/if_tun.h>: TUNSETIFF = _IOW('T', 202, int); IFF_TUN / IFF_NO_PI flags.
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
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

/** Each packet gets a fixed slot; 2 KiB holds an MTU-1500 packet or the largest generated reply (1344). */
export const TUN_SLOT_BYTES = 2048;
export const TUN_MAX_MTU = TUN_SLOT_BYTES;

interface Libc {
  open(path: string, flags: number): number;
  close(fd: number): number;
  ioctl(fd: number, req: number, arg: Uint8Array): number;
  setns(fd: number, nstype: number): number;
  read(fd: number, buf: Uint8Array, n: number): number;
  write(fd: number, buf: Uint8Array, n: number): number;
}

let libc: Libc | null = null;

function sys(): Libc {
  if (libc) return libc;
  const lib = koffi.load('libc.so.6');
  libc = {
    open: lib.func('int open(const char *path, int flags)'),
    close: lib.func('int close(int fd)'),
    ioctl: lib.func('int ioctl(int fd, unsigned long req, void *arg)'),
    setns: lib.func('int setns(int fd, int nstype)'),
    // koffi hands a typed array's own memory to C (no copy), so the core's memory is read and
    // written in place.
    read: lib.func('long read(int fd, void *buf, size_t n)'),
    write: lib.func('long write(int fd, const void *buf, size_t n)'),
  } as Libc;
  return libc;
}

function errnoName(e: number): string {
  return { 1: 'EPERM', 2: 'ENOENT', 13: 'EACCES', 16: 'EBUSY', 19: 'ENODEV', 22: 'EINVAL' }[e] ?? `errno ${e}`;
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

  private constructor(readonly fd: number, readonly name: string) {}

  static open(opts: TunOpenOptions): TunDevice {
    const name = opts.name;
    const nameBytes = new TextEncoder().encode(name);
    if (nameBytes.length === 0 || nameBytes.length >= IFNAMSIZ) throw new Error(`TUN name must be 1-15 bytes: ${JSON.stringify(name)}`);
    const c = sys();
    const fd = opts.netnsPath === undefined ? openTunHere(c) : inNetns(c, opts.netnsPath, () => openTunHere(c));
    // struct ifreq: char ifr_name[IFNAMSIZ]; short ifr_flags (first member of the union).
    const ifr = new Uint8Array(IFREQ_BYTES);
    ifr.set(nameBytes, 0);
    new DataView(ifr.buffer).setUint16(IFNAMSIZ, IFF_TUN | IFF_NO_PI, true);
    if (c.ioctl(fd, TUNSETIFF, ifr) < 0) {
      const e = koffi.errno();
      c.close(fd);
      throw new TunError(`TUNSETIFF ${name}`, e);
    }
    return new TunDevice(fd, name);
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

  /** Writes the first `n` bytes of `buf` as one packet: bytes written or -errno. */
  write(buf: Uint8Array, n: number): number {
    const r = sys().write(this.fd, buf, Math.min(n, buf.length));
    return r >= 0 ? r : -koffi.errno();
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
 * arena offset k × TUN_SLOT_BYTES; the core may rewrite a packet in place or replace it with a
 * reply up to the slot's size.
 */
export class TunPump {
  readonly counters: TunCounters = {
    batches: 0, packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0, dropped: 0, readErrors: 0, writeErrors: 0, lastErrno: 0,
  };
  readonly batchSize: number;
  private readonly descBase: number;
  private readonly dataBase: number;
  private readonly dataBytes: number;
  private buffer: ArrayBuffer | null = null;
  private dv!: DataView;
  private u8!: Uint8Array;
  /** slots[k] views batch slot k of the arena. */
  private slots: Uint8Array[] = [];
  /** Gets a copy of every packet the core dropped with reason dns_upstream (ProxyLoop's dnsForwarder). */
  onDnsUpstream: ((packet: Uint8Array) => void) | null = null;

  constructor(readonly dp: Dataplane, readonly tun: TunDevice, batchSize = 64) {
    const core = dp.core;
    const maxByArena = Math.floor(core.ioDataBytes() / TUN_SLOT_BYTES);
    this.batchSize = Math.max(1, Math.min(batchSize, core.ioMaxBatch(), maxByArena));
    this.descBase = core.ioDescPtr();
    this.dataBase = core.ioDataPtr();
    this.dataBytes = core.ioDataBytes();
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
      const at = this.dataBase + k * TUN_SLOT_BYTES;
      this.slots.push(this.u8.subarray(at, at + TUN_SLOT_BYTES));
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
    let n = 0;
    while (n < this.batchSize) {
      const off = n * TUN_SLOT_BYTES;
      const r = t.read(this.slots[n]!);
      if (r === 0) break;
      if (r < 0) {
        if (-r === EINTR) continue;
        c.readErrors++;
        c.lastErrno = -r;
        break;
      }
      const d = this.descBase + n * DESC.bytes;
      dv.setUint32(d + DESC.off, off, true);
      dv.setUint32(d + DESC.len, r, true);
      dv.setUint32(d + DESC.cap, TUN_SLOT_BYTES, true);
      dv.setUint32(d + DESC.meta, 0, true);
      c.bytesIn += r;
      n++;
    }
    if (n === 0) return 0;
    c.packetsIn += n;
    c.batches++;
    this.dp.core.processBatch(n, nowMs >>> 0);
    this.renew();
    for (let k = 0; k < n; k++) {
      const d = this.descBase + k * DESC.bytes;
      if (this.u8[d + DESC.verdict] === VERDICT_DROP) {
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
      // The core rewrites in place, so the packet is still in its slot; should it ever move one,
      // a one-off view (the only allocation here) carries it.
      const w = off === k * TUN_SLOT_BYTES && len <= TUN_SLOT_BYTES
        ? t.write(this.slots[k]!, len)
        : t.write(this.u8.subarray(this.dataBase + off, this.dataBase + off + len), len);
      if (w < 0) {
        c.writeErrors++;
        c.lastErrno = -w;
      } else {
        c.packetsOut++;
        c.bytesOut += w;
      }
    }
    return n;
  }
}
