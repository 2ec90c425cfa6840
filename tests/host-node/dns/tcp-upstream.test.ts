// DNS over TCP and upstream forwarding, end to end on loopback: `svcplane dns` answers `dig +tcp`,
// a headless Service too big for one UDP answer comes back truncated and the real `dig` retries it
// over TCP; names outside the zone go to fake upstream resolvers in this test (UDP, TCP retry on
// TC, timeout then the next upstream, SERVFAIL when all fail, the client's ID restored), REFUSED
// without one; on the packet path such a query is dropped with reason dns_upstream and the host's
// DnsPacketForwarder turns it into the reply packet (also through the node proxy's loop); TCP to
// the cluster DNS address goes on down the pipeline, where a Service takes it to the node listener.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, connect, type Server } from 'node:net';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer, runDns, type DnsServer } from '../../../host-node/cli/dns.js';
import { DnsForwarder, DnsPacketForwarder, parseUpstream } from '../../../host-node/dns/forward.js';
import { nodeUpstreamExchange } from '../../../host-node/io/dns-upstream.js';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket, checksumsValid } from '../../../host-node/core/packet.js';
import { readDnsCounters, type DnsCore } from '../../../host-node/dns/table.js';
import { setDnsForward } from '../../../host-node/core/cluster-dns.js';
import { FIXTURE, manyEndpoints, query, decode, RCODE } from '../../assembly/dns/msg.js';

const run = promisify(execFile);

// ---- a fake upstream resolver on loopback (UDP and TCP on one port) ----

/** End of the question: 12 + the uncompressed qname + 4. */
function questionEnd(q: Uint8Array): number {
  let p = 12;
  while (q[p]! !== 0) p += 1 + q[p]!;
  return p + 5;
}

function qname(q: Uint8Array): string {
  const labels: string[] = [];
  for (let p = 12; q[p]! !== 0; p += 1 + q[p]!) labels.push(Buffer.from(q.subarray(p + 1, p + 1 + q[p]!)).toString('latin1'));
  return labels.join('.').toLowerCase();
}

/** `count` A records 198.18.7.x for the query's name; TC set (and no records) when `truncate`. */
function fakeAnswer(q: Uint8Array, count: number, truncate: boolean): Uint8Array {
  const qEnd = questionEnd(q);
  const rr = truncate ? 0 : count;
  const out = Buffer.alloc(qEnd + rr * 16);
  Buffer.from(q.subarray(0, qEnd)).copy(out);
  out.writeUInt16BE(0x8180 | (truncate ? 0x0200 : 0) | (q[2]! & 0x01) << 8, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(rr, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  for (let i = 0; i < rr; i++) {
    const at = qEnd + i * 16;
    out.writeUInt16BE(0xc00c, at);
    out.writeUInt16BE(1, at + 2);
    out.writeUInt16BE(1, at + 4);
    out.writeUInt32BE(60, at + 6);
    out.writeUInt16BE(4, at + 10);
    out.set([198, 18, 7, i + 1], at + 12);
  }
  return out;
}

interface FakeUpstream { port: number; udpQueries: string[]; tcpQueries: string[]; ids: number[]; close(): Promise<void> }

/** big.example: truncated over UDP, 100 records over TCP; silent.example: never answered; else one A. */
async function fakeUpstream(): Promise<FakeUpstream> {
  const f: FakeUpstream = { port: 0, udpQueries: [], tcpQueries: [], ids: [], close: async () => {} };
  const reply = (q: Uint8Array, tcp: boolean): Uint8Array | null => {
    const name = qname(q);
    (tcp ? f.tcpQueries : f.udpQueries).push(name);
    f.ids.push((q[0]! << 8) | q[1]!);
    if (name === 'silent.example') return null;
    if (name === 'big.example') return fakeAnswer(q, 100, !tcp);
    return fakeAnswer(q, 1, false);
  };
  const udp: Socket = createSocket('udp4');
  udp.on('message', (m, from) => {
    const a = reply(new Uint8Array(m), false);
    if (a) udp.send(a, from.port, from.address);
  });
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  f.port = udp.address().port;
  const tcp: Server = createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('error', () => c.destroy());
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = new Uint8Array(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + q.length);
        const a = reply(q, true);
        if (a) { const len = Buffer.alloc(2); len.writeUInt16BE(a.length); c.write(Buffer.concat([len, a])); }
      }
    });
  });
  await new Promise<void>((r) => tcp.listen(f.port, '127.0.0.1', r));
  f.close = async () => {
    await new Promise<void>((r) => tcp.close(() => r()));
    await new Promise<void>((r) => udp.close(() => r()));
  };
  return f;
}

/** A loopback UDP port nobody answers on (bound, silent): an upstream that times out. */
async function deadUpstream(): Promise<{ port: number; close(): Promise<void> }> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return { port: s.address().port, close: () => new Promise<void>((r) => s.close(() => r())) };
}

async function udpAsk(port: number, q: Uint8Array): Promise<Uint8Array> {
  const s = createSocket('udp4');
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no answer')), 4000);
      s.on('message', (m) => { clearTimeout(t); resolve(new Uint8Array(m)); });
      s.send(q, port, '127.0.0.1');
    });
  } finally {
    s.close();
  }
}

/** Sends `frames` on one TCP connection (optionally split byte by byte) and collects `want` answers. */
async function tcpAsk(port: number, frames: Uint8Array[], want: number, split = false): Promise<Uint8Array[]> {
  const c = connect({ port, host: '127.0.0.1' });
  const out: Uint8Array[] = [];
  let buf = Buffer.alloc(0);
  try {
    return await new Promise<Uint8Array[]>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`got ${out.length} of ${want} answers`)), 4000);
      c.on('error', reject);
      c.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          out.push(new Uint8Array(buf.subarray(2, 2 + buf.readUInt16BE(0))));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (out.length >= want) { clearTimeout(t); resolve(out); }
      });
      c.on('connect', async () => {
        const all = Buffer.concat(frames.map((f) => { const l = Buffer.alloc(2); l.writeUInt16BE(f.length); return Buffer.concat([l, f]); }));
        if (!split) { c.write(all); return; }
        for (const byte of all) { c.write(Uint8Array.of(byte)); await new Promise((r) => setTimeout(r, 1)); }
      });
    });
  } finally {
    c.destroy();
  }
}

let dir = '';
let upstream: FakeUpstream;
let dead: { port: number; close(): Promise<void> };
let server: DnsServer;        // forwards to [dead, upstream]
let lone: DnsServer;          // no upstream

async function dig(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=4', ...args]);
  return stdout;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svp-dns-tcp-'));
  // 120 A records: over the 1232 bytes dig offers over UDP.
  writeFileSync(join(dir, 'fixture.yaml'), FIXTURE + manyEndpoints(120));
  upstream = await fakeUpstream();
  dead = await deadUpstream();
  server = await startDnsServer({
    listen: '127.0.0.1:0', manifests: dir, watch: false, upstreamTimeoutMs: 300,
    upstreams: [`127.0.0.1:${dead.port}`, `127.0.0.1:${upstream.port}`],
  });
  lone = await startDnsServer({ listen: '127.0.0.1:0', manifests: dir, watch: false });
});

afterAll(async () => {
  await server?.close();
  await lone?.close();
  await upstream?.close();
  await dead?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('DNS over TCP (svcplane dns)', () => {
  it('answers dig +tcp from the same port', async () => {
    const out = await dig(lone.address.port, '+tcp', '+noall', '+answer', 'kubernetes.default.svc.cluster.local', 'A');
    expect(out).toMatch(/^kubernetes\.default\.svc\.cluster\.local\.\s+5\s+IN\s+A\s+10\.3\.0\.1$/m);
  });

  it('a headless answer over the UDP size is truncated, and dig retries it over TCP to get every record', async () => {
    const before = lone.counters();
    const out = await dig(lone.address.port, 'many.default.svc.cluster.local', 'A');
    expect(out).toMatch(/Truncated, retrying in TCP mode/);
    expect(out).toMatch(/status: NOERROR/);
    const addrs = [...out.matchAll(/^many\.default\.svc\.cluster\.local\.\s+5\s+IN\s+A\s+(10\.4\.0\.\d+)$/gm)].map((m) => m[1]);
    expect(new Set(addrs).size).toBe(120);
    const after = lone.counters();
    expect(after.truncated).toBe(before.truncated! + 1);
    // +ignore keeps the truncated UDP answer: TC set, fewer records.
    const udpOnly = await dig(lone.address.port, '+ignore', '+noedns', 'many.default.svc.cluster.local', 'A');
    expect(udpOnly).toMatch(/flags: qr aa tc rd;/);
    expect([...udpOnly.matchAll(/IN\s+A\s+10\.4\./g)].length).toBeLessThan(120);
  });

  it('several frames on one connection, even split byte by byte, each get their framed answer', async () => {
    const frames = [query('kubernetes.default.svc.cluster.local', 'A', { id: 1 }), query('nope.default.svc.cluster.local', 'A', { id: 2 })];
    for (const split of [false, true]) {
      const answers = (await tcpAsk(lone.address.port, frames, 2, split)).map(decode);
      expect(answers.map((a) => [a.id, a.rcode, a.tc])).toEqual([[1, RCODE.NOERROR, false], [2, RCODE.NXDOMAIN, false]]);
    }
  });
});

describe('upstream forwarding (svcplane dns --dns-upstream)', () => {
  it('without an upstream, names outside the zone are REFUSED', async () => {
    expect(await dig(lone.address.port, 'example.org', 'A')).toMatch(/status: REFUSED/);
  });

  it('forwards over UDP past a silent upstream, with the client ID restored', async () => {
    const before = server.forwarded();
    const a = decode(await udpAsk(server.address.port, query('www.example.org', 'A', { id: 0xbeef })));
    expect(a.id).toBe(0xbeef);
    expect(a.rcode).toBe(RCODE.NOERROR);
    expect(a.answer.map((r) => r.data)).toEqual(['198.18.7.1']);
    const after = server.forwarded();
    expect(after.answered).toBe(before.answered + 1);
    expect(after.failedTries).toBe(before.failedTries + 1);   // the dead one timed out first
    // The upstream saw a different ID than the client's.
    expect(upstream.ids[upstream.ids.length - 1]).not.toBe(0xbeef);
    expect(server.counters().upstream).toBeGreaterThan(0);
    // Cluster names are still answered by the core, not forwarded.
    expect((await dig(server.address.port, '+short', 'kubernetes.default.svc.cluster.local')).trim()).toBe('10.3.0.1');
  });

  it('retries over TCP when the upstream UDP answer is truncated', async () => {
    const out = await dig(server.address.port, '+tcp', 'big.example', 'A');
    expect([...out.matchAll(/^big\.example\.\s+60\s+IN\s+A\s+198\.18\.7\.\d+$/gm)].length).toBe(100);
    expect(upstream.tcpQueries).toContain('big.example');
    // A UDP client gets the truncated answer (100 records do not fit 1232 bytes) and retries with us over TCP.
    const before = server.forwarded().tcpRetries;
    const udp = await dig(server.address.port, 'big.example', 'A');
    expect(udp).toMatch(/Truncated, retrying in TCP mode/);
    expect([...udp.matchAll(/IN\s+A\s+198\.18\.7\./g)].length).toBe(100);
    expect(server.forwarded().tcpRetries).toBe(before + 1);
  });

  it('an ExternalName naming an outside host: the CNAME, then the upstream addresses of its target (UDP and TCP)', async () => {
    const from = upstream.udpQueries.length;
    const out = await dig(server.address.port, 'foo.default.svc.cluster.local', 'A');
    expect(out).toMatch(/status: NOERROR/);
    expect(out).toMatch(/flags: qr aa rd ra;/);
    expect(out).toMatch(/^foo\.default\.svc\.cluster\.local\.\s+5\s+IN\s+CNAME\s+www\.example\.com\.$/m);
    expect(out).toMatch(/^www\.example\.com\.\s+60\s+IN\s+A\s+198\.18\.7\.1$/m);
    // The upstream was asked for the target, never for the cluster name.
    expect(upstream.udpQueries.slice(from)).toEqual(['www.example.com']);
    const tcp = await dig(server.address.port, '+tcp', 'foo.default.svc.cluster.local', 'A');
    expect(tcp).toMatch(/^www\.example\.com\.\s+60\s+IN\s+A\s+198\.18\.7\.1$/m);
    expect(upstream.tcpQueries).toContain('www.example.com');
    // Without an upstream: the CNAME alone, as before.
    const alone = await dig(lone.address.port, 'foo.default.svc.cluster.local', 'A');
    expect(alone).toMatch(/status: NOERROR.*\n.*ANSWER: 1,/);
  });

  it('SERVFAIL when every upstream fails', async () => {
    const out = await dig(server.address.port, 'silent.example', 'A');
    expect(out).toMatch(/status: SERVFAIL/);
    expect(out).toMatch(/QUESTION SECTION:\n;silent\.example\.\s+IN\s+A/);
  });

  it('parses upstream addresses and refuses bad ones on the command line', async () => {
    expect(parseUpstream('192.0.2.1')).toEqual({ host: '192.0.2.1', port: 53 });
    expect(parseUpstream('192.0.2.1:5353')).toEqual({ host: '192.0.2.1', port: 5353 });
    expect(parseUpstream('[2001:db8::1]:54')).toEqual({ host: '2001:db8::1', port: 54 });
    expect(parseUpstream('2001:db8::1')).toEqual({ host: '2001:db8::1', port: 53 });
    expect(() => parseUpstream('dns.example')).toThrow(/ADDR/);
    let err = '';
    expect(await runDns(['--manifests', dir, '--dns-upstream', '1.2.3.4:99999'], () => {}, (s) => (err += s))).toBe(2);
    expect(err).toMatch(/--dns-upstream/);
  });
});

describe('the packet path hands outside names to the host', () => {
  const DNS4 = '10.96.0.10';
  const POD4 = '10.244.1.5';
  let dp: Dataplane;
  beforeAll(async () => {
    dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], clusterDNS: DNS4, seed: 3 });
    dp.dns(FIXTURE);
  });
  const counters = () => readDnsCounters({ ...(dp.core as unknown as DnsCore), memory: dp.core.memory });

  it('REFUSED in the slot while forwarding is off; dropped dns_upstream, bytes unchanged, when on', async () => {
    const pkt = buildPacket({ src: POD4, dst: DNS4, proto: 'udp', sport: 41000, dport: 53, payload: query('www.example.org', 'A', { id: 0x7777 }) });
    const off = dp.process(pkt, 1000);
    expect(off.verdict).toBe('REPLY');
    expect(decode(decodePacket(off.packet!).payload).rcode).toBe(RCODE.REFUSED);

    setDnsForward(dp.core, true);
    try {
      const before = counters().upstream!;
      const r = dp.process(pkt, 1000);
      expect([r.verdict, r.reason]).toEqual(['DROP', 'dns_upstream']);
      expect(counters().upstream).toBe(before + 1);
      expect(dp.stats().drop_dns_upstream).toBeGreaterThan(0);
      // Cluster names are still answered in the slot.
      const inZone = dp.process(buildPacket({ src: POD4, dst: DNS4, proto: 'udp', sport: 41000, dport: 53, payload: query('kubernetes.default.svc.cluster.local', 'A') }), 1000);
      expect(inZone.verdict).toBe('REPLY');

      const fwd = new DnsPacketForwarder(new DnsForwarder([{ host: '127.0.0.1', port: upstream.port }], nodeUpstreamExchange, { timeoutMs: 1000 }));
      const reply = (await fwd.reply(pkt))!;
      expect(checksumsValid(reply)).toBe(true);
      const p = decodePacket(reply);
      expect([p.src, p.sport, p.dst, p.dport, p.proto]).toEqual([DNS4, 53, POD4, 41000, 17]);
      const m = decode(p.payload);
      expect([m.id, m.rcode, m.answer.map((a) => a.data)]).toEqual([0x7777, RCODE.NOERROR, ['198.18.7.1']]);
      expect(await fwd.reply(buildPacket({ src: POD4, dst: DNS4, proto: 'tcp', sport: 1, dport: 53 }))).toBeNull();
    } finally {
      setDnsForward(dp.core, false);
    }
  });

  it('leaves TCP to the cluster DNS address to the pipeline: a Service carries it to the node listener', async () => {
    const before = counters().tcp_passed!;
    const syn = buildPacket({ src: POD4, dst: DNS4, proto: 'tcp', sport: 42000, dport: 53, flags: 'S' });
    // No Service for it yet: the core passes it on, as any VIP without one.
    expect(dp.process(syn, 1000).verdict).toBe('PASS');
    expect(counters().tcp_passed).toBe(before + 1);
    // The node proxy's Service: cluster DNS address:53/TCP → its own listener, masqueraded.
    const node = await Dataplane.create({ nodeIPs: ['198.18.0.1'], masqueradeIPs: ['198.18.0.1'], clusterDNS: DNS4, conntrackCapacity: 16 });
    node.dns(FIXTURE);
    node.setServices([{ vip: DNS4, port: 53, protocol: 'TCP', endpoints: ['198.18.0.1:5353'], masqueradeAll: true }]);
    const r = node.process(syn, 1000);
    expect(r.verdict).toBe('FORWARD');
    const p = decodePacket(r.packet!);
    expect([p.dst, p.dport, p.src]).toEqual(['198.18.0.1', 5353, '198.18.0.1']);
    expect(node.conntrack()).toHaveLength(1);
    // UDP to the same address is still answered in the slot.
    const q = node.process(buildPacket({ src: POD4, dst: DNS4, proto: 'udp', sport: 41000, dport: 53, payload: query('kubernetes.default.svc.cluster.local', 'A') }), 1000);
    expect(q.verdict).toBe('REPLY');
  });
});

describe('the node proxy forwards what the core hands over', () => {
  it('ProxyLoop with a dnsForwarder writes the upstream answer back to the device', async () => {
    const { ProxyLoop } = await import('../../../host-node/io/proxy-loop.js');
    type Device = ConstructorParameters<typeof ProxyLoop>[1];
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], clusterDNS: '10.96.0.10', conntrackCapacity: 16 });
    dp.dns(FIXTURE);
    setDnsForward(dp.core, true);
    const queue = [
      buildPacket({ src: '10.244.1.5', dst: '10.96.0.10', proto: 'udp', sport: 41001, dport: 53, payload: query('www.example.org', 'A', { id: 0x5151 }) }),
      buildPacket({ src: '10.244.1.5', dst: '10.96.0.10', proto: 'udp', sport: 41002, dport: 53, payload: query('kubernetes.default.svc.cluster.local', 'A', { id: 0x5252 }) }),
    ];
    const written: Uint8Array[] = [];
    // A stand-in for the TUN device: hands out the queued packets, records what is written.
    const device = {
      fd: -1, isOpen: true,
      read(buf: Uint8Array): number { const p = queue.shift(); if (!p) return 0; buf.set(p); return p.length; },
      write(buf: Uint8Array, n: number): number { written.push(buf.slice(0, n)); return n; },
      close() {},
    } as unknown as Device;
    const fwd = new DnsPacketForwarder(new DnsForwarder([{ host: '127.0.0.1', port: upstream.port }], nodeUpstreamExchange, { timeoutMs: 1000 }));
    const loop = new ProxyLoop(dp, device, { dnsForwarder: fwd });
    expect(loop.drain()).toBe(2);
    // The cluster name is answered in the batch; the other one once the upstream has answered.
    expect(written.map((p) => decode(decodePacket(p).payload).id)).toEqual([0x5252]);
    const end = Date.now() + 4000;
    while (written.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const p = decodePacket(written[1]!);
    expect([p.src, p.sport, p.dst, p.dport]).toEqual(['10.96.0.10', 53, '10.244.1.5', 41001]);
    expect(checksumsValid(written[1]!)).toBe(true);
    expect(decode(p.payload)).toMatchObject({ id: 0x5151, rcode: RCODE.NOERROR });
    expect(loop.stats().dropped).toBe(1);
  });
});
