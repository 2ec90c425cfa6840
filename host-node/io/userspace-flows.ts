// userspace-flows.ts — the userspace proxy's only link to the core. A connection accepted on a
// service port's listener becomes the packet it would have been without the proxy: client
// address/port → the Service's cluster IP/port, built in memory and run through the Dataplane like
// any packet the TUN delivers. The core's verdict and DNAT destination decide where the socket
// connects, so session affinity, traffic policies, REJECT for Services without endpoints and
// conntrack are those of every other mode. The socket's later life (handshake done, refused by the
// endpoint, closed; each UDP datagram either way) is fed as header-only packets, so conntrack
// states, timeouts and IPVS connection counts follow the real sockets.
// Never opens a socket, never picks an endpoint itself, never reads the clock (the caller's clock).
import { buildPacket, decodePacket } from '../core/packet.js';
import type { Dataplane, ProcessResult } from '../core/dataplane.js';

export type FlowProtocol = 'tcp' | 'udp';

/** One client's connection (TCP) or session (UDP) to one Service port, as the core saw it. */
export interface CoreFlow {
  proto: FlowProtocol;
  client: string;
  clientPort: number;
  vip: string;
  port: number;
  /** Sent by a process on this node (the OUTPUT path) rather than from outside it. */
  local: boolean;
  /** The endpoint the core DNATed the flow to. */
  endpoint: string;
  endpointPort: number;
  /** The flow's source after the core's SNAT (masquerade), which replies are addressed to. */
  natSrc: string;
  natPort: number;
}

/** Why the core gave no endpoint: its drop reason, or "reject" when it answered in the client's place. */
export type Refusal = { refused: string };

/** What the userspace proxy's sockets did, for metrics. */
export interface UserspaceCounters {
  /** TCP connections spliced to an endpoint; UDP sessions opened. */
  proxied: { tcp: number; udp: number };
  /** Connections / datagrams the core gave no endpoint, by reason ("reject", "no_endpoints", …). */
  refused: Record<string, number>;
  /** TCP connections the chosen endpoint refused or never answered. */
  connectFailed: number;
  /** Payload bytes client → endpoint and endpoint → client. */
  bytesToEndpoint: number;
  bytesToClient: number;
  /** UDP datagrams client → endpoint and back. */
  datagramsToEndpoint: number;
  datagramsToClient: number;
}

export function newCounters(): UserspaceCounters {
  return { proxied: { tcp: 0, udp: 0 }, refused: {}, connectFailed: 0, bytesToEndpoint: 0, bytesToClient: 0, datagramsToEndpoint: 0, datagramsToClient: 0 };
}

/** Text of an address a socket reported: IPv4-mapped IPv6 ("::ffff:127.0.0.1") as plain IPv4. */
export function socketAddress(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1]! : a;
}

/** Header-only TCP/UDP packets through the core, for the userspace proxy's sockets. */
export class CoreFlows {
  constructor(private readonly dp: Dataplane, private readonly now: () => number) {}

  /**
   * The connection's first packet (a TCP SYN, or the UDP session's first datagram, or every later
   * datagram of it: a flushed flow is scheduled afresh): the flow the core chose, or why it chose none.
   */
  open(proto: FlowProtocol, client: string, clientPort: number, vip: string, port: number, local: boolean): CoreFlow | Refusal {
    // A client of the other family than the Service address (a v4-mapped peer on a v6 socket) has no packet.
    if (client.includes(':') !== vip.includes(':')) return { refused: 'family' };
    const r = this.run({ src: client, dst: vip, proto, sport: clientPort, dport: port, ...(proto === 'tcp' ? { flags: 'S' } : {}) }, local);
    if (!r) return { refused: 'bad_address' };
    if (r.verdict === 'REPLY') return { refused: 'reject' };
    // PASS: the core has no Service rules at all (nothing synced yet).
    if (r.verdict === 'PASS') return { refused: 'no_service' };
    if (r.verdict !== 'FORWARD' || !r.packet) return { refused: r.reason ?? r.verdict.toLowerCase() };
    const out = decodePacket(r.packet);
    // A packet that leaves with its Service destination was matched by no Service rule.
    if (out.dst === vip && out.dport === port) return { refused: 'no_service' };
    return { proto, client, clientPort, vip, port, local, endpoint: out.dst, endpointPort: out.dport, natSrc: out.src, natPort: out.sport };
  }

  /** The endpoint accepted: its SYN-ACK and the client's ACK (conntrack ESTABLISHED, assured). */
  established(f: CoreFlow): void {
    this.reply(f, 'SA');
    this.original(f, 'A');
  }

  /**
   * The endpoint refused or never answered: its RST ends the flow (a RST as the only reply removes
   * it at once: nf_conntrack_proto_tcp.c, "If only reply is a RST").
   */
  failed(f: CoreFlow): void {
    this.reply(f, 'R');
  }

  /**
   * Both sides closed: FINs both ways and the last ACK (conntrack TIME_WAIT), or, when either side
   * aborted, a RST from the side that did.
   */
  closed(f: CoreFlow, how: 'graceful' | 'client-reset' | 'endpoint-reset'): void {
    if (how === 'client-reset') this.original(f, 'R');
    else if (how === 'endpoint-reset') this.reply(f, 'R');
    else {
      this.original(f, 'FA');
      this.reply(f, 'FA');
      this.original(f, 'A');
    }
  }

  /** A UDP datagram from the endpoint back to the client (conntrack sees the reply; stream timeout). */
  udpReply(f: CoreFlow): void {
    this.reply(f, '');
  }

  private original(f: CoreFlow, flags: string): void {
    this.run({ src: f.client, dst: f.vip, proto: f.proto, sport: f.clientPort, dport: f.port, ...(f.proto === 'tcp' ? { flags } : {}) }, f.local);
  }

  private reply(f: CoreFlow, flags: string): void {
    this.run({ src: f.endpoint, dst: f.natSrc, proto: f.proto, sport: f.endpointPort, dport: f.natPort, ...(f.proto === 'tcp' ? { flags } : {}) }, false);
  }

  /** The core's result, or null for an address no packet can carry (a socket callback never throws). */
  private run(spec: Parameters<typeof buildPacket>[0], local: boolean): ProcessResult | null {
    let bytes: Uint8Array;
    try {
      bytes = buildPacket(spec);
    } catch {
      return null;
    }
    return this.dp.process({ bytes, local }, Math.floor(this.now()));
  }
}
