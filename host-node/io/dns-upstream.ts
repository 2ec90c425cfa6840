// io/dns-upstream.ts — Node sockets for the DNS upstream forwarder (host-node/dns/forward.ts): one
// UDP exchange on a fresh ephemeral socket (a new source port per query, RFC 5452 §9.2) that only
// takes datagrams from the upstream's address and port, and one TCP exchange with the RFC 1035
// §4.2.2 two-byte length framing. Both give up after a timeout and resolve null on any error.
// Never decides what to forward or what to answer (forward.ts does).
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import type { Upstream, UpstreamExchange } from '../dns/forward.js';

function udpExchange(to: Upstream, msg: Uint8Array, timeoutMs: number, accept: (a: Uint8Array) => boolean): Promise<Uint8Array | null> {
  return new Promise((resolve) => {
    const socket = createSocket(to.host.includes(':') ? 'udp6' : 'udp4');
    let done = false;
    const finish = (a: Uint8Array | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      resolve(a);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    socket.on('error', () => finish(null));
    socket.on('message', (m, from) => {
      // RFC 5452 §9.1: only an answer from the address and port we asked counts.
      if (from.port !== to.port || from.address !== to.host) return;
      const a = new Uint8Array(m.buffer, m.byteOffset, m.byteLength);
      if (accept(a)) finish(a.slice());
    });
    socket.send(msg, to.port, to.host, (e) => { if (e) finish(null); });
  });
}

function tcpExchange(to: Upstream, msg: Uint8Array, timeoutMs: number): Promise<Uint8Array | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let have = 0;
    let done = false;
    const sock = connect({ host: to.host, port: to.port });
    const finish = (a: Uint8Array | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    sock.on('error', () => finish(null));
    sock.on('close', () => finish(null));
    sock.on('connect', () => {
      const frame = new Uint8Array(2 + msg.length);
      frame[0] = (msg.length >> 8) & 0xff;
      frame[1] = msg.length & 0xff;
      frame.set(msg, 2);
      sock.write(frame);
    });
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      have += d.length;
      if (have < 2) return;
      const all = Buffer.concat(chunks);
      const len = all.readUInt16BE(0);
      if (have >= 2 + len) finish(new Uint8Array(all.subarray(2, 2 + len)));
    });
  });
}

/** The forwarder's exchanges over the host's own sockets. */
export const nodeUpstreamExchange: UpstreamExchange = { udp: udpExchange, tcp: tcpExchange };
