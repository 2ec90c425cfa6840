// userspace-tcp.ts — one TCP service port of the userspace proxy: a listener on a local address
// whose accepted connections are spliced to the endpoint the core chose for them (userspace-flows).
// Both directions are copied with back-pressure; a FIN from one side is passed on as a FIN to the
// other (half-close), a reset or error on one side resets the other. A connection the core gives
// no endpoint (no endpoints: REJECT; a traffic-policy DROP) is reset at once; so is one whose
// endpoint refuses or does not answer within kube-proxy's dial budget. Closing the listener stops
// new connections only; established ones continue (pkg/proxy/userspace/proxysocket.go does the same).
// Never chooses an endpoint, never retries another one on its own (the core's choice stands).
import { connect, createServer, type Server, type Socket } from 'node:net';
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
    // A side that closes without an error event while the other is still open was reset or destroyed.
    client.once('close', (hadError) => { if (hadError && up) reset(endpoint); });
    endpoint.once('close', (hadError) => { if (hadError) reset(client); });
  }
}
