// conntrack-record.ts — decodes the core's fixed-size flow record (assembly/conntrack/export.ts:
// 88 bytes, little-endian) into the object hosts show and test against, and names the timeout
// kinds a host may set. Never talks to the core itself.
import { formatIP } from './packet.js';

export const RECORD_BYTES = 88;
export const RECORD_VERSION = 1;

const TCP_STATES = ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'] as const;
const PROTOS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };

/** Status bits (the kernel's IPS_* meanings). */
export const CT_STATUS = { seenReply: 1 << 1, assured: 1 << 2, confirmed: 1 << 3, snat: 1 << 4, dnat: 1 << 5 } as const;

/** Timeout kinds for Dataplane.setConntrackTimeout (assembly/conntrack/timeouts.ts). */
export const TIMEOUTS = {
  tcpSynSent: 1, tcpSynRecv: 2, tcpEstablished: 3, tcpFinWait: 4, tcpCloseWait: 5, tcpLastAck: 6,
  tcpTimeWait: 7, tcpClose: 8, tcpSynSent2: 9, tcpUnacknowledged: 10, udpUnreplied: 11, udpStream: 12,
  icmp: 13, icmpv6: 14, generic: 15, sctpUnreplied: 16, sctpStream: 17,
} as const;

export interface TupleView { src: string; dst: string; sport: number; dport: number; icmpType?: number }

export interface ConntrackEntry {
  proto: string;
  family: 4 | 6;
  original: TupleView;
  reply: TupleView;
  /** TCP state name for TCP, else undefined. */
  state?: (typeof TCP_STATES)[number];
  assured: boolean;
  seenReply: boolean;
  mark: number;
  /** Absolute expiry on the caller's clock. */
  expiresMs: number;
  nat: { dnat: boolean; snat: boolean };
}

function tuple(dv: DataView, at: number, family: 4 | 6, proto: number, icmpType: number): TupleView {
  const n = family === 4 ? 4 : 16;
  const bytes = (o: number) => new Uint8Array(dv.buffer, dv.byteOffset + o, n).slice();
  const t: TupleView = {
    src: formatIP(bytes(at)),
    dst: formatIP(bytes(at + 16)),
    sport: dv.getUint16(at + 32, true),
    dport: dv.getUint16(at + 34, true),
  };
  if (proto === 1 || proto === 58) t.icmpType = icmpType;
  return t;
}

export function decodeRecord(dv: DataView, at: number, nowMs: number): ConntrackEntry {
  const family = dv.getUint8(at + 1) === 6 ? 6 : 4;
  const proto = dv.getUint8(at + 2);
  const status = dv.getUint8(at + 6);
  const e: ConntrackEntry = {
    proto: PROTOS[proto] ?? String(proto),
    family,
    original: tuple(dv, at + 16, family, proto, dv.getUint8(at + 4)),
    reply: tuple(dv, at + 52, family, proto, dv.getUint8(at + 5)),
    assured: (status & CT_STATUS.assured) !== 0,
    seenReply: (status & CT_STATUS.seenReply) !== 0,
    mark: dv.getUint32(at + 8, true),
    expiresMs: nowMs + dv.getInt32(at + 12, true),
    nat: { dnat: (status & CT_STATUS.dnat) !== 0, snat: (status & CT_STATUS.snat) !== 0 },
  };
  if (proto === 6) e.state = TCP_STATES[dv.getUint8(at + 3)] ?? 'NONE';
  return e;
}
