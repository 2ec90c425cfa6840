// dns/forward.ts — the host's upstream forwarder for cluster DNS queries the core hands back as "not
// ours" (dnsForward on: dnsAnswer returns -4, the packet path drops with reason dns_upstream): tries
// each upstream in order over UDP (or TCP for a client that came over TCP), retries over TCP when
// the UDP answer is truncated, moves on after a timeout or a network error, answers SERVFAIL when
// every upstream failed, and always hands the client its own ID back. DnsPacketForwarder does the
// same for a query packet taken from the dataplane's slot and builds the UDP reply packet.
// Platform-neutral: sockets come in through an UpstreamExchange (host-node/io/dns-upstream.ts for
// Node). Never caches, never answers from records (the core does) and never reads a clock itself.
import { readHeader, withId, answers, servfail, clientUdpSize } from './message.js';
import { tryParseIP } from '../core/words.js';
import { buildPacket, decodePacket } from '../core/packet.js';
import { resolveUpstream, type LocalAnswer } from './chase.js';

export interface Upstream { host: string; port: number }

/** "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or "[2001:db8::53]:5353" (port 53 by default). */
export function parseUpstream(text: string): Upstream {
  const t = text.trim();
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(t) ?? /^([0-9.]+)(?::(\d+))?$/.exec(t) ?? /^([0-9a-fA-F:]+)()$/.exec(t);
  const port = m?.[2] ? Number(m[2]) : 53;
  if (!m || !tryParseIP(m[1]!) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`--dns-upstream: expected ADDR or ADDR:PORT, got ${JSON.stringify(text)}`);
  }
  return { host: m[1]!, port };
}

/** One exchange with one upstream; resolves null on timeout or any network error, never rejects. */
export interface UpstreamExchange {
  /** Sends `msg` over UDP and resolves with the first datagram from `to` that `accept` takes. */
  udp(to: Upstream, msg: Uint8Array, timeoutMs: number, accept: (answer: Uint8Array) => boolean): Promise<Uint8Array | null>;
  /** Sends `msg` framed over a fresh TCP connection (RFC 1035 §4.2.2) and resolves with the one answer. */
  tcp(to: Upstream, msg: Uint8Array, timeoutMs: number): Promise<Uint8Array | null>;
}

export interface ForwarderOptions {
  /**
   * Per upstream and try, ms (default 2000): a pod's resolver waits 5 s per try (resolv.conf(5)
   * `timeout:5`), so two upstreams still fit one of its tries.
   */
  timeoutMs?: number;
  /** IDs for the upstream queries (default: random, RFC 5452 §4.3 — never the client's own). */
  nextId?: () => number;
}

export interface ForwarderStats {
  /** Queries given to forward(). */
  queries: number;
  /** Answered by an upstream (whatever its rcode). */
  answered: number;
  /** UDP answers with TC=1 retried over TCP. */
  tcpRetries: number;
  /** Upstream tries that timed out or failed, each moving on to the next upstream. */
  failedTries: number;
  /** Queries answered SERVFAIL because every upstream failed. */
  servfail: number;
}

function randomId(): number {
  const a = new Uint16Array(1);
  globalThis.crypto.getRandomValues(a);
  return a[0]!;
}

export class DnsForwarder {
  readonly stats: ForwarderStats = { queries: 0, answered: 0, tcpRetries: 0, failedTries: 0, servfail: 0 };
  private readonly timeoutMs: number;
  private readonly nextId: () => number;

  constructor(readonly upstreams: readonly Upstream[], private readonly net: UpstreamExchange, o: ForwarderOptions = {}) {
    this.timeoutMs = o.timeoutMs ?? 2000;
    this.nextId = o.nextId ?? randomId;
  }

  /**
   * The answer to `query` (a DNS message of at least 12 bytes) from the first upstream that gives
   * one, carrying the client's ID; SERVFAIL when none does. `via` is how the client asked: over UDP
   * the answer never exceeds the client's UDP size (a truncated answer tells it to come back over
   * TCP); over TCP the upstream is asked over TCP.
   */
  async forward(query: Uint8Array, via: 'udp' | 'tcp' = 'udp'): Promise<Uint8Array> {
    this.stats.queries++;
    const clientId = readHeader(query).id;
    const limit = via === 'udp' ? clientUdpSize(query) : 65535;
    for (const up of this.upstreams) {
      const q = withId(query, this.nextId());
      const accept = (a: Uint8Array) => answers(q, a);
      let a: Uint8Array | null;
      if (via === 'tcp') {
        a = await this.net.tcp(up, q, this.timeoutMs);
        if (a && !accept(a)) a = null;
      } else {
        a = await this.net.udp(up, q, this.timeoutMs, accept);
        // RFC 7766 §5 / RFC 1035 §4.2.1: TC=1 means "ask again over TCP". Keep the truncated
        // answer if the TCP one fails or is larger than the client takes over UDP.
        if (a && readHeader(a).tc) {
          this.stats.tcpRetries++;
          const t = await this.net.tcp(up, q, this.timeoutMs);
          if (t && accept(t) && t.length <= limit) a = t;
        }
      }
      // CoreDNS forward (plugin/forward README): any response, SERVFAIL and REFUSED included,
      // counts as an answer; only a network error or timeout moves on to the next upstream.
      if (a) {
        this.stats.answered++;
        return withId(a, clientId);
      }
      this.stats.failedTries++;
    }
    this.stats.servfail++;
    return servfail(query);
  }
}

/**
 * The packet path's side: a UDP query packet the core dropped with reason dns_upstream (its slot
 * bytes unchanged) → the reply packet for the client, from the address and port it asked. With
 * `local` (the core's dnsAnswerLocal, chase.ts coreLocalAnswer), a cluster name whose CNAME chain
 * leaves the zone is answered with the chain and the upstream's records for its end.
 */
export class DnsPacketForwarder {
  constructor(readonly forwarder: DnsForwarder, private readonly local?: LocalAnswer) {}

  /** The reply packet, or null when `packet` is not an unfragmented UDP datagram with a DNS header. */
  async reply(packet: Uint8Array): Promise<Uint8Array | null> {
    let p: ReturnType<typeof decodePacket>;
    try {
      p = decodePacket(packet);
    } catch {
      return null;
    }
    if (p.proto !== 17 || p.frag || p.payload.length < 12) return null;
    const answer = await resolveUpstream(this.forwarder, p.payload, 'udp', this.local);
    return buildPacket({ src: p.dst, dst: p.src, proto: 'udp', sport: p.dport, dport: p.sport, payload: answer });
  }
}
