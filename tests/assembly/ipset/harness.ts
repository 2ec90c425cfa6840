// Test harness for the ipset core (build/testing-ipset.wasm): sets created through the raw ABI,
// elements written into the element buffer in the format.ts layout, packets built and looked up.
import { loadTestingCore, type TestingCore } from '../../support/testing-core';
import { buildPacket, parseIP, type PacketSpec } from '../../../host-node/core/packet';
import { ipWords } from '../../../host-node/core/words';

// assembly/ipset/format.ts.
export const T = { IP: 1, IP_PORT: 2, IP_PORT_IP: 3, IP_PORT_NET: 4, NET: 5, BITMAP_PORT: 6 } as const;
export const CF = { TIMEOUT: 1, COUNTERS: 2, COMMENT: 4 } as const;
export const EF = { NOMATCH: 1, TIMEOUT: 2, PACKETS: 4, BYTES: 8 } as const;
export const R = { USED: 1, NOMATCH: 2, EXPIRES: 4 } as const;
export const TEST = { ABSENT: 0, PRESENT: 1, NOMATCH: 2 } as const;
export const E = {
  NO_SET: -1, SET_EXISTS: -2, EXIST: -3, NOT_EXIST: -4, FULL: -5, RANGE: -6, CIDR: -7, TYPE_MISMATCH: -8,
  ARG: -9, ID: -10, NULL: -11, NO_TIMEOUT: -12, NO_COUNTERS: -13, TXN: -14, PROTO: -15,
} as const;
export const P = { ICMP: 1, TCP: 6, UDP: 17, GRE: 47, ICMPV6: 58, SCTP: 132 } as const;

export interface El {
  a?: string;
  b?: string;
  port?: number;
  proto?: number;
  cidr?: number;
  flags?: number;
  timeout?: number;
  packets?: bigint;
  bytes?: bigint;
}

export interface CreateArgs {
  flags?: number;
  maxelem?: number;
  timeout?: number;
  seed?: number;
  first?: number;
  last?: number;
}

export class SetCore {
  readonly core: TestingCore;
  readonly x: TestingCore['x'];

  constructor() {
    this.core = loadTestingCore('ipset');
    this.x = this.core.x;
  }

  create(id: number, type: number, family: number, o: CreateArgs = {}): number {
    return this.x.ipsetCreate!(id, type, family, o.flags ?? 0, o.maxelem ?? 65536, o.timeout ?? 0, o.seed ?? 0x1234, o.first ?? 0, o.last ?? 0);
  }

  put(e: El): void {
    const dv = new DataView(this.core.memory.buffer, this.x.ipsetElem!(), 64);
    for (let i = 0; i < 64; i += 4) dv.setUint32(i, 0, true);
    if (e.a) ipWords(parseIP(e.a)).forEach((w, i) => dv.setUint32(i * 4, w, true));
    if (e.b) ipWords(parseIP(e.b)).forEach((w, i) => dv.setUint32(16 + i * 4, w, true));
    dv.setUint16(32, e.port ?? 0, true);
    dv.setUint8(34, e.proto ?? 0);
    dv.setUint8(35, e.cidr ?? 0);
    dv.setUint8(36, e.flags ?? 0);
    dv.setUint32(40, e.timeout ?? 0, true);
    dv.setBigUint64(48, e.packets ?? 0n, true);
    dv.setBigUint64(56, e.bytes ?? 0n, true);
  }

  add(id: number, e: El, o: { exist?: boolean; now?: number } = {}): number {
    this.put(e);
    return this.x.ipsetAdd!(id, o.exist ? 1 : 0, o.now ?? 1000);
  }

  del(id: number, e: El, o: { exist?: boolean; now?: number } = {}): number {
    this.put(e);
    return this.x.ipsetDel!(id, o.exist ? 1 : 0, o.now ?? 1000);
  }

  test(id: number, e: El, now = 1000): number {
    this.put(e);
    return this.x.ipsetTest!(id, now);
  }

  /** Flags, expiry and counters of an element (null when absent). */
  get(id: number, e: El, now = 1000): { flags: number; expiry: number; packets: bigint; bytes: bigint } | null {
    this.put(e);
    if (this.x.ipsetGet!(id, now) !== TEST.PRESENT) return null;
    const dv = new DataView(this.core.memory.buffer, this.x.ipsetElem!(), 64);
    return { flags: dv.getUint8(36), expiry: dv.getUint32(40, true), packets: dv.getBigUint64(48, true), bytes: dv.getBigUint64(56, true) };
  }

  /** Does the packet match set `id` in directions `dirs` (e.g. 'src,dst')? 1 / 0 / -1 (no set). */
  packet(id: number, dirs: string, spec: PacketSpec | Uint8Array, now = 1000, readOnly = false): number {
    const bytes = spec instanceof Uint8Array ? spec : buildPacket(spec);
    const d = dirs.split(',');
    const dims = d.reduce((m, x, i) => m | (x === 'dst' ? 1 << i : 0), 0);
    const p = this.core.put(bytes);
    return this.x.lookupPacket!(id, dims, d.length, p, bytes.length, now, readOnly ? 1 : 0);
  }
}

export const tcp = (src: string, dst: string, sport: number, dport: number): PacketSpec => ({ src, dst, proto: 'tcp', sport, dport, flags: 'S' });
export const udp = (src: string, dst: string, sport: number, dport: number): PacketSpec => ({ src, dst, proto: 'udp', sport, dport });
export const sctp = (src: string, dst: string, sport: number, dport: number): PacketSpec => ({ src, dst, proto: 'sctp', sport, dport });
