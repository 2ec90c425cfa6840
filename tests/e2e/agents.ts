// agents.ts — the programs the end-to-end tests run inside their namespaces, as `node -e` scripts
// speaking one JSON request/reply per line (tests/support/netns.ts LineAgent).
// Backend: TCP :8080 answers one line "<name> <peer> <line>" and closes; TCP :8081 answers every
// line the same way and stays open (long-lived flows); :8082 and :8083 the same, behind no
// Service (direct baselines); TCP :8084 reads everything and, when the peer ends, answers
// "<bytes> <sha256 hex>" of what it read (bulk transfers), :8085 the same behind no Service; TCP
// :8086 is a minimal HTTP/1.1 server (200 "<name>", keep-alive unless the request says
// Connection: close) for wrk, :8087 the same behind no Service; UDP :5353 answers each datagram
// like :8080.
// Client: connections, datagrams, a long-lived connection, HTTP GETs, bounded load and bulk transfers.

import { READY_LOOP, TCP_ONCE } from '../support/netns-tun.js';

export const BACKEND_AGENT = String.raw`
const net = require('net'), dgram = require('dgram'), readline = require('readline'), crypto = require('crypto');
const [name] = process.argv.slice(1);
let pending = 9; const waiters = [];
const ready = () => { if (--pending === 0) waiters.splice(0).forEach((f) => f()); };
const peer = (a) => a.replace(/^::ffff:/, '');
const oneShot = (s) => {
  let buf = '';
  s.on('data', (d) => { buf += d; const nl = buf.indexOf('\n'); if (nl >= 0) s.end(name + ' ' + peer(s.remoteAddress) + ' ' + buf.slice(0, nl) + '\n'); });
  s.on('error', () => {});
};
const lines = (s) => {
  let buf = '';
  s.setNoDelay(true);
  s.on('data', (d) => {
    buf += d; let nl;
    while ((nl = buf.indexOf('\n')) >= 0) { s.write(name + ' ' + peer(s.remoteAddress) + ' ' + buf.slice(0, nl) + '\n'); buf = buf.slice(nl + 1); }
  });
  s.on('error', () => {});
};
net.createServer(oneShot).listen(8080, '::', 1024, ready);
net.createServer(lines).listen(8081, '::', 64, ready);
// The same two behind no Service: the direct-to-pod baseline of the benchmark.
net.createServer(oneShot).listen(8082, '::', 1024, ready);
net.createServer(lines).listen(8083, '::', 64, ready);
const sink = (s) => {
  let n = 0; const h = crypto.createHash('sha256');
  s.on('data', (d) => { n += d.length; h.update(d); });
  s.on('end', () => s.end(n + ' ' + h.digest('hex') + '\n'));
  s.on('error', () => {});
};
const ok = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: ' + name.length + '\r\n\r\n' + name);
const okClose = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: ' + name.length + '\r\nConnection: close\r\n\r\n' + name);
const httpd = (s) => {
  // Requests are small and never pipelined by wrk: each "\r\n\r\n" ends one.
  let buf = '';
  s.setNoDelay(true);
  s.on('data', (d) => {
    buf += d; let end;
    while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
      const req = buf.slice(0, end); buf = buf.slice(end + 4);
      if (/\r\nconnection: *close/i.test(req)) { s.end(okClose); return; }
      s.write(ok);
    }
  });
  s.on('error', () => {});
};
net.createServer(httpd).listen(8086, '::', 4096, ready);
net.createServer(httpd).listen(8087, '::', 4096, ready);
net.createServer({ allowHalfOpen: true }, sink).listen(8084, '::', 16, ready);
net.createServer({ allowHalfOpen: true }, sink).listen(8085, '::', 16, ready);
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => u.send(name + ' ' + r.address + ' ' + m, r.port, r.address));
u.bind(5353, '0.0.0.0', ready);
${READY_LOOP}
`;

export const CLIENT_AGENT = String.raw`
const net = require('net'), dgram = require('dgram'), http = require('http'), readline = require('readline'), crypto = require('crypto');
${TCP_ONCE}
const sessions = new Map(); let nextId = 1;
const udpSocks = new Map();
function lineOn(s, timeoutMs) {
  return new Promise((resolve) => {
    const t = setTimeout(() => { s.off('line', on); resolve({ error: 'timeout' }); }, timeoutMs);
    const on = (l) => { clearTimeout(t); resolve({ reply: l }); };
    s.once('line', on);
  });
}
// Each request of the tcp op from a source port this agent never used before (below the kernel's
// ephemeral range, 32768+). The kernel reuses a source port toward another destination, and two
// Services that keep the client's address and DNAT the same client ip:port to the same endpoint
// collide on the reply tuple: conntrack (the kernel's and the core's alike) drops the second
// connection's SYNs until the first entry expires, so a retransmitted SYN that draws the same
// endpoint again would turn into a timeout that has nothing to do with what a test asks.
let nextPort = 20000 + Math.floor(Math.random() * 8000);
const freshPort = () => { const p = nextPort; nextPort = nextPort >= 31999 ? 20000 : nextPort + 1; return p; };
const ops = {
  async tcp(m) {
    const replies = [], errors = [];
    let next = 0;
    // A port this agent picks may still be held by another socket of the namespace (the kernel
    // says EADDRINUSE before a packet is sent): the next one is taken, as the kernel would.
    const attempt = async (i) => {
      for (let k = 0; ; k++) { const r = await once(m.host, m.port, 'req-' + i, m.timeoutMs || 3000, freshPort()); if (r.error !== 'EADDRINUSE' || k === 3) return r; }
    };
    const worker = async () => { while (next < m.count) { const i = next++; const r = await attempt(i); if (r.error) errors.push(r.error); else replies.push(r.reply); } };
    await Promise.all(Array.from({ length: Math.min(m.count, m.concurrency || 1) }, worker));
    return { replies, errors };
  },
  async udp(m) {
    // A socket (source port) per datagram, unless keep: the socket of that name, kept across calls (fresh: a new one).
    const replies = [], errors = [];
    if (m.keep && m.fresh && udpSocks.has(m.keep)) { udpSocks.get(m.keep).close(); udpSocks.delete(m.keep); }
    for (let i = 0; i < m.count; i++) {
      if (m.keep && !udpSocks.has(m.keep)) udpSocks.set(m.keep, dgram.createSocket('udp4'));
      const s = m.keep ? udpSocks.get(m.keep) : dgram.createSocket('udp4');
      const r = await new Promise((resolve) => {
        const t = setTimeout(() => { s.off('message', on); resolve({ error: 'timeout' }); }, m.timeoutMs || 2000);
        const on = (msg) => { clearTimeout(t); resolve({ reply: String(msg) }); };
        s.once('message', on);
        s.send('dgram-' + i, m.port, m.host);
      });
      if (!m.keep) s.close();
      if (r.error) errors.push(r.error); else replies.push(r.reply);
    }
    return { replies, errors };
  },
  async open(m) {
    const s = net.connect({ host: m.host, port: m.port });
    const id = nextId++;
    let buf = '';
    s.setNoDelay(true);
    s.on('data', (d) => { buf += d; let nl; while ((nl = buf.indexOf('\n')) >= 0) { s.emit('line', buf.slice(0, nl)); buf = buf.slice(nl + 1); } });
    const err = await new Promise((resolve) => { s.once('connect', () => resolve(null)); s.once('error', (e) => resolve(e.code || e.message)); });
    if (err) return { error: err };
    s.on('error', () => {});
    sessions.set(id, s);
    return { id, local: s.localPort };
  },
  async send(m) {
    const s = sessions.get(m.id);
    if (!s || s.destroyed) return { error: 'closed' };
    const p = lineOn(s, m.timeoutMs || 5000);
    s.write(m.line + '\n');
    return p;
  },
  async close(m) { const s = sessions.get(m.id); if (s) { s.destroy(); sessions.delete(m.id); } return { ok: true }; },
  async http(m) {
    return new Promise((resolve) => {
      const req = http.get({ host: m.host, port: m.port, path: m.path, timeout: 3000 }, (res) => {
        let body = ''; res.on('data', (d) => { body += d; }); res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.on('timeout', () => { req.destroy(); resolve({ status: 0, body: 'timeout' }); });
      req.on('error', (e) => resolve({ status: 0, body: e.code || e.message }));
    });
  },
  async load(m) {
    const start = Date.now(); let ok = 0; const errors = {}; const lat = [];
    const worker = async () => {
      while (Date.now() - start < m.ms) {
        const t0 = process.hrtime.bigint();
        const r = await once(m.host, m.port, 'load', 3000);
        if (r.error) errors[r.error] = (errors[r.error] || 0) + 1; else { ok++; lat.push(Number(process.hrtime.bigint() - t0) / 1e6); }
      }
    };
    await Promise.all(Array.from({ length: m.concurrency }, worker));
    lat.sort((a, b) => a - b);
    const q = (p) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0;
    return { ok, errors, ms: Date.now() - start, p50: q(0.5), p99: q(0.99) };
  },
  async requests(m) {
    // Keep-alive request/response latency on one long-lived connection per worker.
    const start = Date.now(); let ok = 0; const lat = [];
    const worker = async () => {
      const c = await ops.open(m);
      if (c.error) return;
      while (Date.now() - start < m.ms) {
        const t0 = process.hrtime.bigint();
        const r = await ops.send({ id: c.id, line: 'r' });
        if (r.error) break;
        ok++; lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      await ops.close({ id: c.id });
    };
    await Promise.all(Array.from({ length: m.concurrency }, worker));
    lat.sort((a, b) => a - b);
    const q = (p) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0;
    return { ok, ms: Date.now() - start, p50: q(0.5), p99: q(0.99) };
  },
  async bulk(m) {
    // One connection writing m.bytes of random data in m.chunk pieces (respecting backpressure),
    // then ending; the sink answers the bytes it read and their SHA-256, timed from connect to that
    // answer. Returns both ends' counts and digests.
    const chunk = m.chunk || 1 << 20;
    return new Promise((resolve) => {
      const s = net.connect({ host: m.host, port: m.port });
      const h = crypto.createHash('sha256');
      let t0 = 0, sent = 0, reply = '', done = false;
      const finish = (v) => { if (!done) { done = true; clearTimeout(guard); s.destroy(); resolve(v); } };
      const guard = setTimeout(() => finish({ error: 'timeout after ' + sent + ' bytes' }), m.timeoutMs || 20000);
      const pump = () => {
        while (sent < m.bytes) {
          const b = crypto.randomBytes(Math.min(chunk, m.bytes - sent));
          h.update(b); sent += b.length;
          if (!s.write(b)) { s.once('drain', pump); return; }
        }
        s.end();
      };
      s.on('connect', () => { t0 = Date.now(); pump(); });
      s.on('data', (d) => { reply += d; });
      s.on('end', () => {
        const [n, digest] = reply.trim().split(' ');
        finish({ sent, sentSha256: h.digest('hex'), received: Number(n), receivedSha256: digest, ms: Date.now() - t0 });
      });
      s.on('error', (e) => finish({ error: e.code || e.message }));
    });
  },
};
let chain = Promise.resolve();
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  chain = chain.then(async () => {
    let out;
    try { const m = JSON.parse(l); out = ops[m.op] ? await ops[m.op](m) : { error: 'unknown op ' + m.op }; }
    catch (e) { out = { error: String(e && e.stack || e) }; }
    if (out && out.error) out = { failed: out.error };
    process.stdout.write(JSON.stringify(out) + '\n');
  });
});
`;
