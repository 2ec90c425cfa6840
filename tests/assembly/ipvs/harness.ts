// Test harness for IPVS: a fresh ipvs test core per Lab, programmed through the real host layer
// (host-node/ipvs/program.ts), packets built with host-node/core/packet.ts and run through
// ipvsProcess, scheduler decisions asked directly.
import { loadTestingCore, type TestingCore } from '../../support/testing-core';
import { IpvsProgram, type IpvsCore, type VirtualService, type Destination } from '../../../host-node/ipvs/program';
import { buildPacket, decodePacket, parseIP, type PacketSpec, type DecodedPacket } from '../../../host-node/core/packet';
import { ipWords, wordsIP } from '../../../host-node/core/words';
import { formatIP } from '../../../host-node/core/packet';

export const V = { PASS: 0, FORWARD: 1, DROP: 2, REPLY: 3, NOT_IPVS: 255 } as const;
export const R = { NONE: 0, CT_FULL: 6, NO_ENDPOINTS: 8, POLICY: 9, TOO_BIG: 11 } as const;
export const NIL = 0xffffffff;
const DESC = { len: 4, verdict: 16, reason: 18, aux: 28 };

export interface Sent {
  verdict: number;
  reason: number;
  bytes: Uint8Array;
  pkt: DecodedPacket | undefined;
  dest: number;
  result: { fwd: number; nhFamily: number; flags: number; state: number; conn: number; dest: number; svc: number; nextHop: string | undefined };
}

export function words(ip: string): [number, number, number, number] { return ipWords(parseIP(ip)); }

export class Lab {
  readonly core: TestingCore;
  readonly x: TestingCore['x'];
  readonly p: IpvsProgram;

  constructor(opts: { connLog2?: number; services?: number; destinations?: number; seed?: number } = {}) {
    this.core = loadTestingCore('ipvs');
    this.x = this.core.x;
    this.p = new IpvsProgram({ ...this.x, memory: this.core.memory } as unknown as IpvsCore);
    this.p.init({ connLog2: opts.connLog2 ?? 10, services: opts.services ?? 64, destinations: opts.destinations ?? 1024, seed: opts.seed ?? 1 });
    this.x.seed!(opts.seed ?? 7, 0);
  }

  /** A service with destinations added in the order given (the kernel lists them newest first). */
  service(vs: VirtualService, dests: Destination[] = []): { svc: number; ids: number[] } {
    const svc = this.p.addService(vs);
    const ids = dests.map((d) => this.p.addDest(svc, d));
    return { svc, ids };
  }

  /** One scheduling decision for client src:sport → dst:dport (state moves as for a real packet). */
  pick(svc: number, src: string, opts: { sport?: number; dst?: string; dport?: number; proto?: number; now?: number } = {}): number {
    const s = words(src), d = words(opts.dst ?? (src.includes(':') ? 'fd00::100' : '198.18.0.100'));
    return this.x.pick!(svc, src.includes(':') ? 6 : 4, opts.proto ?? 6, ...s, opts.sport ?? 40000, ...d, opts.dport ?? 80, opts.now ?? 0) >>> 0;
  }

  /** Runs a packet through ipvsProcess. */
  send(spec: PacketSpec | Uint8Array, opts: { now?: number; mark?: number; cap?: number } = {}): Sent {
    const bytes = spec instanceof Uint8Array ? spec : buildPacket(spec);
    const at = this.core.put(bytes);
    const verdict = this.x.run!(at, bytes.length, opts.cap ?? 2048, opts.mark ?? 0, opts.now ?? 0);
    const dv = this.core.dv();
    const desc = this.x.descPtr!();
    const len = dv.getUint32(desc + DESC.len, true);
    const out = this.core.get(at, len);
    const r = this.x.resultPtr!();
    const nhFamily = dv.getUint8(r + 1);
    const result = {
      fwd: dv.getUint8(r), nhFamily, flags: dv.getUint8(r + 2), state: dv.getUint8(r + 3), conn: dv.getUint32(r + 4, true),
      dest: dv.getUint32(r + 8, true), svc: dv.getUint32(r + 12, true),
      nextHop: nhFamily === 4 || nhFamily === 6 ? formatIP(wordsIP(nhFamily, [0, 4, 8, 12].map((o) => dv.getUint32(r + 16 + o, true)))) : undefined,
    };
    let pkt: DecodedPacket | undefined;
    try { pkt = decodePacket(out); } catch { pkt = undefined; }
    return {
      verdict: verdict === 255 ? V.NOT_IPVS : verdict, reason: dv.getUint16(desc + DESC.reason, true), bytes: out, pkt,
      dest: dv.getUint32(desc + DESC.aux, true), result,
    };
  }

  setCounts(dest: number, active: number, inact: number): void { this.x.setDestCounts!(dest, active, inact); }
  dest(id: number) { return this.p.dest(id); }
}

export function tcp(src: string, sport: number, dst: string, dport: number, flags: string, payload = 0): PacketSpec {
  return { src, dst, proto: 'tcp', sport, dport, flags, payload: new Uint8Array(payload) };
}
export function udp(src: string, sport: number, dst: string, dport: number, payload = 4): PacketSpec {
  return { src, dst, proto: 'udp', sport, dport, payload: new Uint8Array(payload) };
}
