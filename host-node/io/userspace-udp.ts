// userspace-udp.ts — one UDP service port of the userspace proxy: a socket on a local address and
// one session per client address/port, each with its own socket toward the endpoint the core chose
// (pkg/proxy/userspace/proxysocket.go: clientCache, one backend conn per client). Every datagram
// from the client goes through the core first (userspace-flows): while the flow lives it keeps its
// endpoint; when the core flushed it (its endpoint left) or scheduled it elsewhere, the session moves
// to the new endpoint; when the core gives none, the datagram is dropped and the session closed.
// Replies from the endpoint go back to the client from the listening socket. A session idle in both
// directions for udpIdleTimeout (kube-proxy's --udp-timeout, 250 ms by default) is closed. Closing the
// listener ends its sessions (as kube-proxy's UDP proxy socket did). Sessions are capped per port
// (each holds a socket): datagrams from new clients beyond it are dropped and counted. Never
// chooses an endpoint.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { socketAddress, type CoreFlow } from './userspace-flows.js';
import type { ListenerContext, ListenerTarget } from './userspace-tcp.js';

/** Client sessions one UDP service port holds at most (each holds a socket); more are refused. */
export const MAX_UDP_SESSIONS = 4096;

interface Session {
  key: string;
  flow: CoreFlow;
  /** Toward the endpoint. */
  sock: Socket;
  idle: ReturnType<typeof setTimeout>;
}

export class UdpServicePort {
  private readonly sessions = new Map<string, Session>();
  private closed = false;

  private constructor(private readonly socket: Socket, readonly port: number, readonly target: ListenerTarget, private readonly ctx: ListenerContext, private readonly idleMs: number) {
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
