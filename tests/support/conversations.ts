// tests/support/conversations.ts — random two-ended conversations for the kernel differentials of
// conntrack (tests/kernel/conntrack-differential.test.ts, nat-conversations.test.ts): TCP with
// every flag mix from either end, numbered so the kernel's window tracker stays in step; UDP
// datagrams; ICMP and ICMPv6 queries, answers and types nothing may open. Builds packets only;
// never sends, never reads a clock.
import { buildPacket, decodePacket, type PacketSpec } from '../../host-node/core/packet';
import type { Rng } from './kube-gen';

export type Proto = 'tcp' | 'udp' | 'icmp' | 'icmpv6';

export const MOD = 2 ** 32;

/** An address and port (an ICMP query's identifier). */
export interface End {
  addr: string;
  port: number;
}

export interface Conversation {
  proto: Proto;
  /** The end that speaks first, and its port. */
  client: string;
  sport: number;
  /** The server's address and port as the server sees them. */
  server: string;
  port: number;
  /** Where the client sends (a Service address before DNAT); the server's own end when absent. */
  to?: End;
  /** Where the server answers (the client, or the address NAT gave it); the client when absent. */
  back?: End;
  /** Each end's initial sequence number (TCP). */
  isn: [number, number];
  /** What was sent, for the report. */
  log: string[];
}

/** TCP flag sets, with how often; the last six are never valid (tcp_valid_flags). */
const TCP_KINDS: ReadonlyArray<readonly [string, number]> = [
  ['S', 14], ['SA', 12], ['A', 22], ['PA', 4], ['FA', 14], ['R', 6], ['RA', 6], ['UA', 1], ['SU', 1],
  ['F', 2], ['SF', 2], ['', 2], ['SR', 1], ['FR', 1],
];
const TCP_TOTAL = TCP_KINDS.reduce((s, [, w]) => s + w, 0);

/** Source and destination of a packet in direction `dir` (0: client to server). */
function ends(c: Conversation, dir: 0 | 1): [End, End] {
  const client = { addr: c.client, port: c.sport }, server = { addr: c.server, port: c.port };
  return dir === 0 ? [client, c.to ?? server] : [server, c.back ?? client];
}

/**
 * The next TCP packet of a conversation: a random flag set. The numbers stay where the kernel's
 * window tracker never sees unacknowledged data or a retransmission, whatever it took or ignored
 * before: a SYN or FIN is numbered at the end's first number (so both end where the SYN did),
 * anything else one on, every ACK acknowledges the other end's SYN (so a reset carries exactly the
 * number the other end acknowledged), and each packet has its own window (four equal ACKs in a
 * row would be retransmissions).
 */
function nextTcp(rng: Rng, c: Conversation, dir: 0 | 1, mark: number | undefined, flags?: string, extra: Extra = {}): Uint8Array {
  if (flags === undefined) {
    let roll = rng.int(1, TCP_TOTAL);
    for (const [k, w] of TCP_KINDS) if ((roll -= w) <= 0) { flags = k; break; }
  }
  const f = flags ?? '';
  const ack = f.includes('A');
  const seq = f.includes('S') || f.includes('F') ? c.isn[dir] : (c.isn[dir] + 1) % MOD;
  const ackNo = ack ? (c.isn[1 - dir]! + 1) % MOD : 0;
  c.log.push(`${dir === 0 ? '>' : '<'}${f || '.'} ${seq}${ack ? ` ack ${ackNo}` : ''}`);
  const [from, to] = ends(c, dir);
  return buildPacket({ src: from.addr, dst: to.addr, proto: 'tcp', sport: from.port, dport: to.port, flags: f, seq, ack: ackNo, window: rng.int(1024, 65535), ...marked(from.addr, mark), ...extra });
}

/** The next UDP datagram or ICMP message: for ICMP mostly echoes, sometimes an answer or a type nothing may open. */
function nextOther(rng: Rng, c: Conversation, dir: 0 | 1, mark: number | undefined, opening: boolean, extra: Extra = {}): Uint8Array {
  const [from, to] = ends(c, dir);
  if (c.proto === 'udp') {
    c.log.push(dir === 0 ? '>' : '<');
    return buildPacket({ src: from.addr, dst: to.addr, proto: 'udp', sport: from.port, dport: to.port, payload: new Uint8Array(8), ...marked(from.addr, mark), ...extra });
  }
  // Echo request 8 / reply 0, timestamp 13 / reply 14, and an information request (15) or a
  // router advertisement (9) nothing may open; IPv6: echo 128 / 129, node information query 139
  // / response 140, and a router solicitation (133, neighbour discovery: never tracked).
  const type = opening ? (c.proto === 'icmp' ? 8 : 128)
    : c.proto === 'icmp' ? rng.pick([8, 8, 8, 0, 0, 13, 14, 15, 9]) : rng.pick([128, 128, 128, 129, 129, 139, 140, 133]);
  c.log.push(`${dir === 0 ? '>' : '<'}${type}`);
  // One identifier both ways: the client's, or the one NAT gave it.
  const id = dir === 0 ? c.sport : c.back?.port ?? c.sport;
  return buildPacket({ src: from.addr, dst: to.addr, proto: c.proto, icmp: { type, code: 0, id, seq: c.log.length }, ...marked(from.addr, mark), ...extra });
}

/** A packet's mark, to find it again after forwarding: the IPv4 identification or the IPv6 flow label. */
const marked = (src: string, mark: number | undefined) => (mark === undefined ? {} : src.includes(':') ? { flowLabel: mark } : { id: mark });

/**
 * The next packet of a conversation in direction `dir`. `opening`: the client's packet that
 * starts it (a SYN, a datagram, an echo request). `mark` tags it (the IPv4 identification or IPv6 flow label, which forwarding keeps).
 */
export function nextPacket(rng: Rng, c: Conversation, dir: 0 | 1, opts: { mark?: number; opening?: boolean; extra?: Extra } = {}): Uint8Array {
  if (c.proto === 'tcp') return nextTcp(rng, c, dir, opts.mark, opts.opening ? 'S' : undefined, opts.extra);
  return nextOther(rng, c, dir, opts.mark, opts.opening ?? false, opts.extra);
}

/** More of the packet's spec (IPv6 extension headers, TCP or IPv4 options). */
export type Extra = Pick<PacketSpec, 'ext' | 'tcpOptions' | 'ipOptions'>;

/**
 * Flips a bit or two of the 16-bit checksum at byte `at` of packet `p` (by default its transport
 * checksum: TCP, UDP or ICMP/ICMPv6), so it no longer verifies; never to 0, which UDP reads as
 * "no checksum".
 */
export function breakChecksum(rng: Rng, p: Uint8Array, at?: number): void {
  const d = decodePacket(p);
  const field = at ?? d.headerLength + (d.proto === 6 ? 16 : d.proto === 17 ? 6 : 2);
  do p[field + rng.int(0, 1)] ^= 1 << rng.int(0, 7);
  while (p[field] === 0 && p[field + 1] === 0);
}
