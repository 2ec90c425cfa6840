// userspace-listeners.ts — one service port of the userspace proxy, listening on a local address;
// the core chooses every endpoint (userspace-flows), these only carry bytes.
// TCP: accepted connections are spliced to the endpoint the core chose. Both directions are copied
// with back-pressure; a FIN from one side is passed on as a FIN to the other (half-close), a reset
// or error on one side resets the other. A connection the core gives no endpoint (no endpoints:
// REJECT; a traffic-policy DROP) is reset at once; so is one whose endpoint refuses or does not
// answer within kube-proxy's dial budget. Closing the listener stops new connections only;
// established ones continue (pkg/proxy/userspace/proxysocket.go does the same).
// UDP: one session per client address/port, each with its own socket toward the endpoint the core
// chose (proxysocket.go: clientCache, one backend conn per client). Every datagram from the client
// goes through the core first: while the flow lives it keeps its endpoint; when the core flushed it
// (its endpoint left) or scheduled it elsewhere, the session moves to the new endpoint; when the
// core gives none, the datagram is dropped and the session closed. Replies go back to the client
// from the listening socket. A session idle in both directions for udpIdleTimeout (kube-proxy's
// --udp-timeout, 250 ms by default) is closed; sessions are capped per port (each holds a socket).
// Closing the listener ends its sessions (as kube-proxy's UDP proxy socket did).
// Never chooses an endpoint, never retries another one on its own (the core's choice stands).
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { socketAddress, type CoreFlows, type CoreFlow, type UserspaceCounters } from './userspace-flows.js';

// proxysocket.go endpointDialTimeout: 250 ms + 500 ms + 1 s + 2 s across its retries.
export const CONNECT_TIMEOUT_MS = 3750;

/** The Service address a listener stands for; updated in place when the Service changes. */
export interface ListenerTarget {
  vip: string;
  port: number;
}

export interface ListenerContext {
  flows: CoreFlows;
  counters: UserspaceCounters;
  /** True for a client on this node (its packet takes the OUTPUT path). */
  isLocal: (addr: string) => boolean;
}

/** Resets a socket once, whatever state it is in. */
function reset(s: Socket): void {
  if (s.destroyed) return;
  if (s.connecting || s.readyState === 'open' || s.readyState === 'readOnly' || s.readyState === 'writeOnly') s.resetAndDestroy();
  else s.destroy();
}

export class TcpServicePort {
  /** Client socket → its endpoint socket, while either is open. */
  private readonly conns = new Map<Socket, Socket>();

  private constructor(private readonly server: Server, readonly port: number, readonly target: ListenerTarget, private readonly ctx: ListenerContext) {
    server.on('connection', (s: Socket) => this.accept(s));
    // An accept error (EMFILE) is the process's problem, not one listener's: keep listening.
    server.on('error', () => {});
  }

  /** Listens on bind:port (0 = any free port); rejects with the socket error (EADDRINUSE, EACCES). */
  static listen(bind: string, port: number, target: ListenerTarget, ctx: ListenerContext): Promise<{ port: number; handle: TcpServicePort }> {
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: bind, port, exclusive: true, ipv6Only: bind.includes(':') }, () => {
        server.off('error', reject);
        const bound = (server.address() as { port: number }).port;
        resolve({ port: bound, handle: new TcpServicePort(server, bound, target, ctx) });
      });
    });
  }

  /** Connections being spliced now. */
  get active(): number {
    return this.conns.size;
  }

  /** Stops accepting; established connections continue unless `dropConnections`. */
  close(dropConnections = false): void {
    this.server.close();
    if (!dropConnections) return;
    for (const [client, endpoint] of this.conns) {
      client.destroy();
      endpoint.destroy();
    }
  }

  private accept(client: Socket): void {
    const { flows, counters } = this.ctx;
    const peer = socketAddress(client.remoteAddress ?? '');
    const peerPort = client.remotePort ?? 0;
    client.on('error', () => {});
    if (!peer || !peerPort) {
      client.destroy();
      return;
    }
    const f = flows.open('tcp', peer, peerPort, this.target.vip, this.target.port, this.ctx.isLocal(peer));
    if ('refused' in f) {
      counters.refused[f.refused] = (counters.refused[f.refused] ?? 0) + 1;
      reset(client);
      return;
    }
    this.splice(client, f);
  }

  private splice(client: Socket, f: CoreFlow): void {
    const { flows, counters } = this.ctx;
    const endpoint = connect({ host: f.endpoint, port: f.endpointPort, allowHalfOpen: true });
    this.conns.set(client, endpoint);
    let up = false;
    let aborted: 'client-reset' | 'endpoint-reset' | null = null;
    let open = 2;
    const closed = (): void => {
      if (--open > 0) return;
      this.conns.delete(client);
      counters.bytesToEndpoint += endpoint.bytesWritten;
      counters.bytesToClient += client.bytesWritten;
      if (up) flows.closed(f, aborted ?? 'graceful');
    };
    client.once('close', closed);
    endpoint.once('close', closed);
    endpoint.setTimeout(CONNECT_TIMEOUT_MS, () => endpoint.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })));
    endpoint.once('connect', () => {
      up = true;
      endpoint.setTimeout(0);
      flows.established(f);
      counters.proxied.tcp++;
      client.pipe(endpoint);
      endpoint.pipe(client);
    });
    client.on('error', () => {
      aborted ??= 'client-reset';
      if (up) reset(endpoint);
      else endpoint.destroy();
    });
    endpoint.on('error', () => {
      if (!up) {
        counters.connectFailed++;
        flows.failed(f);
      } else {
        aborted ??= 'endpoint-reset';
      }
      reset(client);
    });
  }
}


/** Client sessions one UDP service port holds at most (each holds a socket); more are refused. */
export const MAX_UDP_SESSIONS = 4096;

interface Session {
  key: string;
  flow: CoreFlow;
  /** Toward the endpoint. */
  sock: UdpSocket;
  idle: ReturnType<typeof setTimeout>;
}

export class UdpServicePort {
  private readonly sessions = new Map<string, Session>();
  private closed = false;

  private constructor(private readonly socket: UdpSocket, readonly port: number, readonly target: ListenerTarget, private readonly ctx: ListenerContext, private readonly idleMs: number) {
    socket.on('message', (msg, rinfo) => this.fromClient(msg, rinfo));
    socket.on('error', () => {});
  }

  /** Binds bind:port (0 = any free port); rejects with the socket error. */
  static listen(bind: string, port: number, target: ListenerTarget, ctx: ListenerContext, idleMs: number): Promise<{ port: number; handle: UdpServicePort }> {
    const v6 = bind.includes(':');
    const socket = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, reuseAddr: false });
    return new Promise((resolve, reject) => {
      socket.once('error', (e) => { socket.close(); reject(e); });
      socket.bind({ address: bind, port, exclusive: true }, () => {
        socket.removeAllListeners('error');
        const bound = socket.address().port;
        resolve({ port: bound, handle: new UdpServicePort(socket, bound, target, ctx, idleMs) });
      });
    });
  }

  /** Client sessions open now. */
  get active(): number {
    return this.sessions.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sessions.values()) this.end(s);
    this.socket.close();
  }

  private fromClient(msg: Buffer, rinfo: RemoteInfo): void {
    const { flows, counters } = this.ctx;
    const peer = socketAddress(rinfo.address);
    const key = `${rinfo.address}|${rinfo.port}`;
    let s = this.sessions.get(key);
    const f = flows.open('udp', peer, rinfo.port, this.target.vip, this.target.port, this.ctx.isLocal(peer));
    if ('refused' in f) {
      counters.refused[f.refused] = (counters.refused[f.refused] ?? 0) + 1;
      if (s) this.end(s);
      return;
    }
    if (s && (s.flow.endpoint !== f.endpoint || s.flow.endpointPort !== f.endpointPort)) {
      this.end(s);
      s = undefined;
    }
    if (!s) {
      if (this.sessions.size >= MAX_UDP_SESSIONS) {
        counters.refused.udp_sessions_full = (counters.refused.udp_sessions_full ?? 0) + 1;
        return;
      }
      s = this.open(key, f, rinfo);
    }
    s.flow = f;
    s.idle.refresh();
    counters.datagramsToEndpoint++;
    counters.bytesToEndpoint += msg.length;
    s.sock.send(msg, f.endpointPort, f.endpoint);
  }

  private open(key: string, f: CoreFlow, client: RemoteInfo): Session {
    const sock = createSocket(f.endpoint.includes(':') ? 'udp6' : 'udp4');
    const s: Session = { key, flow: f, sock, idle: setTimeout(() => this.end(s), this.idleMs) };
    s.idle.unref();
    this.sessions.set(key, s);
    this.ctx.counters.proxied.udp++;
    sock.on('message', (reply, from) => {
      // Only the endpoint's own datagrams are passed back (the socket is not connected).
      if (socketAddress(from.address) !== s.flow.endpoint || from.port !== s.flow.endpointPort || this.closed) return;
      s.idle.refresh();
      this.ctx.flows.udpReply(s.flow);
      this.ctx.counters.datagramsToClient++;
      this.ctx.counters.bytesToClient += reply.length;
      this.socket.send(reply, client.port, client.address);
    });
    sock.on('error', () => this.end(s));
    return s;
  }

  private end(s: Session): void {
    clearTimeout(s.idle);
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    try { s.sock.close(); } catch { /* already closed */ }
  }
}
