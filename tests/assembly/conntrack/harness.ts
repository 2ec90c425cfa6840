// Test harness for the conntrack unit build: tuples as plain objects, addresses as text, every
// u32 result normalised (wasm i32 returns come back signed).
import { loadTestingCore, type TestingCore } from '../../support/testing-core';

export const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10, URG = 0x20, ECE = 0x40, CWR = 0x80;
export const TCP = 6, UDP = 17, ICMP = 1, ICMPV6 = 58, SCTP = 132, GRE = 47;
export const FRAG_LATER = 2;
export const NONE = 0xffffffff;

// ctstate values (state.ts) and status bits (entry.ts), as the kernel numbers them.
export const S_INVALID = 1, S_ESTABLISHED = 2, S_RELATED = 4, S_NEW = 8, S_REPEAT = 0x80;
export const SEEN_REPLY = 1 << 1, ASSURED = 1 << 2, CONFIRMED = 1 << 3, SNAT = 1 << 4, DNAT = 1 << 5;
// TCP states.
export const NO = 0, SS = 1, SR = 2, ES = 3, FW = 4, CW = 5, LA = 6, TW = 7, CL = 8, S2 = 9;

export const SEC = 1000, MIN = 60 * SEC, HOUR = 60 * MIN, DAY = 24 * HOUR;

export interface T {
  family: 4 | 6;
  proto: number;
  sport: number;
  dport: number;
  type?: number;
  src: string;
  dst: string;
}

function words(addr: string, family: 4 | 6): number[] {
  const bytes = new Uint8Array(16);
  if (family === 4) {
    addr.split('.').forEach((p, i) => (bytes[i] = Number(p)));
  } else {
    const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, ''];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    groups.forEach((g, i) => {
      const v = parseInt(g, 16);
      bytes[2 * i] = v >> 8;
      bytes[2 * i + 1] = v & 0xff;
    });
  }
  const dv = new DataView(bytes.buffer);
  // Raw little-endian loads of network-order bytes, as the wire parser fills Tuple.
  return [0, 4, 8, 12].map((o) => (family === 4 && o > 0 ? 0 : dv.getUint32(o, true)));
}

export function addrWords(addr: string, family: 4 | 6): number[] {
  return words(addr, family);
}

/** The tuple seen from the other end, ICMP type inverted by the caller. */
export function inv(t: T, type?: number): T {
  return { ...t, src: t.dst, dst: t.src, sport: t.dport, dport: t.sport, type: type ?? t.type };
}

export function key(t: T): string {
  return `${t.family}/${t.proto}/${t.type ?? 0}/${t.src}:${t.sport}>${t.dst}:${t.dport}`;
}

export class Ct {
  core: TestingCore;
  x: Record<string, (...a: number[]) => number>;

  constructor(log2 = 10, log6 = 8, seedLo = 0x1234_5678, seedHi = 0x9abc_def0, init = true) {
    this.core = loadTestingCore('conntrack');
    this.x = this.core.x;
    if (init && !this.init(log2, log6, seedLo, seedHi)) throw new Error('ctInit failed');
  }

  init(log2: number, log6: number, seedLo = 1, seedHi = 2): boolean {
    return this.x.ctInit(log2, log6, seedLo, seedHi) === 1;
  }

  /** Writes `t` into reserved tuple slot `i` (0..2) and returns its address. */
  put(t: T, i = 0): number {
    const p = this.x.tupleAt(i);
    const s = words(t.src, t.family), d = words(t.dst, t.family);
    this.x.setTuple(p, t.family, t.proto, t.sport, t.dport, t.type ?? 0, ...s, ...d);
    return p;
  }

  read(p: number): T {
    const f = (i: number) => this.x.tupleField(p, i) >>> 0;
    const family = f(0) as 4 | 6;
    const toText = (w: number[]) => {
      const b = new Uint8Array(16);
      const dv = new DataView(b.buffer);
      w.forEach((v, i) => dv.setUint32(i * 4, v, true));
      if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
      const g: string[] = [];
      for (let i = 0; i < 8; i++) g.push(((b[2 * i] << 8) | b[2 * i + 1]).toString(16));
      return g.join(':');
    };
    return {
      family, proto: f(1), sport: f(2), dport: f(3), type: f(4),
      src: toText([f(5), f(6), f(7), f(8)]), dst: toText([f(9), f(10), f(11), f(12)]),
    };
  }

  insert(orig: T, reply: T | undefined, now: number): number {
    const o = this.put(orig, 0);
    const r = this.put(reply ?? inv(orig), 1);
    return this.x.ctInsert(o, r, now) >>> 0;
  }

  lookup(t: T, now: number): number {
    return this.x.ctLookup(this.put(t, 2), now) >>> 0;
  }

  packet(index: number, dir: number, tcpFlags: number, now: number, frag = 0): number {
    this.x.setFlow(tcpFlags, frag);
    return this.x.ctPacket(index, dir, this.x.flowPtr(), now) & 0xff;
  }

  orig(index: number): T | null {
    const p = this.x.tupleAt(2);
    return this.x.ctOrig(index, p) ? this.read(p) : null;
  }

  reply(index: number): T | null {
    const p = this.x.tupleAt(2);
    return this.x.ctReply(index, p) ? this.read(p) : null;
  }

  state(index: number): number { return this.x.ctTcpState(index); }
  status(index: number): number { return this.x.ctStatus(index) >>> 0; }
  expiry(index: number): number { return this.x.ctExpiry(index) >>> 0; }
  /** ms left at `now` (expiry - now as a wrapping difference). */
  left(index: number, now: number): number { return (this.expiry(index) - now) | 0; }
  count(): number { return this.x.ctCount() >>> 0; }
  stat(name: string): number {
    return Number(this.x.ctStat(this.g(`CT_STAT_${name}`)) as unknown as bigint);
  }
  /** An exported wasm global (constant). */
  g(name: string): number {
    return (this.x[name] as unknown as WebAssembly.Global).value >>> 0;
  }
}

/** Deterministic PRNG (xorshift32) for property tests. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}
