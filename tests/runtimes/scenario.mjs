// scenario.mjs — one fixed dataplane scenario, runnable unchanged on Node, Deno and Bun. It drives the
// embedded core with ~200 packets at fixed times (TCP handshakes to IPv4 and IPv6 Services, masqueraded
// clients, UDP, ICMP echo, an ICMP error about a NATed flow, empty Services, malformed bytes, expiry),
// then prints one JSON document: every verdict and output packet, conntrack, counters and a sha256 of
// the snapshot. It also checks that a corrupted module and a wrong ABI version fail with clear errors,
// and that the same configuration compiled to a .svp and loaded into a fresh core gives the same answers
// to the same calls (while damaged, truncated and wrong-version .svp files are refused).
// The runtimes' raw error messages go to stderr (they differ per engine); stdout must not differ.
// Never reads a clock, randomness, the environment or files: the same core must print the same bytes.
import { Dataplane } from '../../dist/host-node/core/dataplane.js';
import { buildPacket, decodePacket } from '../../dist/host-node/core/packet.js';
import wasmBase64 from '../../dist/build/core-wasm.js';

const SERVICES = [
  { name: 'default/web:http', vip: '10.96.0.80', port: 80, protocol: 'TCP', endpoints: ['10.244.1.11:8080', '10.244.2.12:8080', '10.244.3.13:8080'] },
  { name: 'kube-system/dns:dns', vip: '10.96.0.10', port: 53, protocol: 'UDP', endpoints: ['10.244.1.21:53', '10.244.2.22:53'] },
  { name: 'default/web6:http', vip: 'fd00:96::80', port: 80, protocol: 'TCP', endpoints: ['[fd00:244::11]:8080', '[fd00:244::12]:8080'] },
  { name: 'default/empty:https', vip: '10.96.0.99', port: 443, protocol: 'TCP', endpoints: [] },
  { name: 'default/local-only:http', vip: '10.96.0.98', port: 80, protocol: 'TCP', endpoints: [], whenEmpty: 'drop' },
];

const OPTIONS = {
  nodeIPs: ['192.168.49.2', 'fd00:49::2'],
  podCIDR: ['10.244.0.0/16', 'fd00:244::/64'],
  serviceCIDR: ['10.96.0.0/12', 'fd00:96::/108'],
  seed: 0x0123456789abcdefn,
  conntrackCapacity: 1024,
  conntrackCapacity6: 256,
};

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

async function sha256(bytes) {
  return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
}

/** A fixed pseudo-random byte stream (xorshift32) for the malformed packets. */
function garbage(seed, n) {
  let x = seed >>> 0 || 1;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

// ---- the scenario ----

const dp = await Dataplane.create({ ...OPTIONS, record: true });
const loaded = dp.setServices(SERVICES);
const svp = dp.compiled({ scenario: 'tests/runtimes' });
const log = [];
const calls = [];   // every packet batch and expiry, replayed below into a core loaded from the .svp

function record(phase, nowMs, results) {
  for (const r of results) {
    log.push({
      i: log.length, phase, nowMs, verdict: r.verdict, reason: r.reason ?? null, ctstate: r.ctstate ?? null,
      out: r.packet ? hex(r.packet) : null,
    });
  }
  return results;
}
const batch = (phase, packets, nowMs) => {
  calls.push({ packets, nowMs });
  return record(phase, nowMs, dp.processBatch(packets, nowMs));
};
const expire = (nowMs) => {
  calls.push({ expireAt: nowMs });
  return dp.expire(nowMs);
};
const one = (phase, packet, nowMs) => batch(phase, [packet], nowMs)[0];
const outOf = (r) => (r.packet ? decodePacket(r.packet) : null);

// 1. Pods open 32 connections to the IPv4 web Service, in batches; endpoints answer; pods ACK.
const pods = Array.from({ length: 32 }, (_, i) => ({ src: `10.244.${1 + (i % 4)}.${10 + i}`, sport: 40000 + i * 7 }));
const syns = batch('tcp4-syn', pods.map((p) => buildPacket({ src: p.src, dst: '10.96.0.80', proto: 'tcp', sport: p.sport, dport: 80, flags: 'S', seq: 1000 + p.sport })), 1000);
const synAcks = batch('tcp4-synack', syns.map((r, k) => {
  const o = outOf(r);
  return buildPacket({ src: o.dst, dst: o.src, proto: 'tcp', sport: o.dport, dport: o.sport, flags: 'SA', seq: 7000 + k, ack: o.seq + 1 });
}), 1010);
batch('tcp4-ack', pods.map((p, k) => buildPacket({ src: p.src, dst: '10.96.0.80', proto: 'tcp', sport: p.sport, dport: 80, flags: 'A', seq: 1001 + p.sport, ack: 7001 + k })), 1020);

// 2. Clients outside the pod network (masqueraded), one packet at a time, two sharing a source port.
for (let k = 0; k < 8; k++) {
  const client = `203.0.113.${20 + k}`;
  const sport = k < 2 ? 51000 : 51000 + k;
  const r = one('tcp4-masq-syn', buildPacket({ src: client, dst: '10.96.0.80', proto: 'tcp', sport, dport: 80, flags: 'S', seq: 500 + k }), 2000 + k);
  const o = outOf(r);
  one('tcp4-masq-synack', buildPacket({ src: o.dst, dst: o.src, proto: 'tcp', sport: o.dport, dport: o.sport, flags: 'SA', seq: 900 + k, ack: 501 + k }), 2100 + k);
  if (k % 2 === 0) one('tcp4-masq-ack', buildPacket({ src: client, dst: '10.96.0.80', proto: 'tcp', sport, dport: 80, flags: 'A', seq: 501 + k, ack: 901 + k }), 2200 + k);
}

// 3. IPv6: 12 handshakes, one endpoint-side reply each, then a FIN from half of them.
const pods6 = Array.from({ length: 12 }, (_, i) => ({ src: `fd00:244::1:${(i + 1).toString(16)}`, sport: 30000 + i }));
const syns6 = batch('tcp6-syn', pods6.map((p) => buildPacket({ src: p.src, dst: 'fd00:96::80', proto: 'tcp', sport: p.sport, dport: 80, flags: 'S', seq: 42 })), 3000);
batch('tcp6-synack', syns6.map((r) => {
  const o = outOf(r);
  return buildPacket({ src: o.dst, dst: o.src, proto: 'tcp', sport: o.dport, dport: o.sport, flags: 'SA', seq: 77, ack: 43 });
}), 3005);
batch('tcp6-fin', pods6.filter((_, i) => i % 2 === 0).map((p) => buildPacket({ src: p.src, dst: 'fd00:96::80', proto: 'tcp', sport: p.sport, dport: 80, flags: 'FA', seq: 43, ack: 78 })), 3010);

// 4. DNS over UDP: 16 queries (pods and outside clients), answers to the first 10.
const queries = Array.from({ length: 16 }, (_, i) => ({ src: i < 10 ? `10.244.9.${i + 1}` : `198.51.100.${i}`, sport: 5300 + i }));
const dnsOut = batch('udp-query', queries.map((q, i) => buildPacket({ src: q.src, dst: '10.96.0.10', proto: 'udp', sport: q.sport, dport: 53, payload: `query-${i}` })), 4000);
batch('udp-answer', dnsOut.slice(0, 10).map((r, i) => {
  const o = outOf(r);
  return buildPacket({ src: o.dst, dst: o.src, proto: 'udp', sport: o.dport, dport: o.sport, payload: `answer-${i}` });
}), 4050);

// 5. ICMP echo: pod to pod (passes, tracked) with replies, and to a Service VIP.
for (let k = 0; k < 4; k++) {
  one('icmp-echo', buildPacket({ src: '10.244.1.5', dst: '10.244.2.6', proto: 'icmp', icmp: { id: 0x4242, seq: k } }), 5000 + k * 10);
  one('icmp-echo-reply', buildPacket({ src: '10.244.2.6', dst: '10.244.1.5', proto: 'icmp', icmp: { type: 0, id: 0x4242, seq: k } }), 5001 + k * 10);
}
one('icmp-echo-vip', buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'icmp', icmp: { id: 7, seq: 1 } }), 5100);
one('icmp6-echo', buildPacket({ src: 'fd00:244::1:1', dst: 'fd00:244::2:2', proto: 'icmpv6', icmp: { id: 9, seq: 1 } }), 5110);

// 6. ICMP errors about NATed flows: port unreachable from a DNS endpoint (UDP), and
//    fragmentation-needed from a web endpoint (TCP), each quoting the packet it got.
{
  const q = outOf(dnsOut[12]);
  const quoted = buildPacket({ src: q.src, dst: q.dst, proto: 'udp', sport: q.sport, dport: q.dport, payload: 'query-12' });
  one('icmp-error-udp', buildPacket({ src: q.dst, dst: q.src, proto: 'icmp', icmp: { type: 3, code: 3, quote: quoted } }), 6000);
  const t = outOf(syns[3]);
  const quotedTcp = buildPacket({ src: t.src, dst: t.dst, proto: 'tcp', sport: t.sport, dport: t.dport, flags: 'A', seq: t.seq + 1 });
  one('icmp-error-tcp', buildPacket({ src: t.dst, dst: t.src, proto: 'icmp', icmp: { type: 3, code: 4, mtu: 1400, quote: quotedTcp } }), 6001);
}

// 7. Services without endpoints, a VIP nobody holds, a port nobody serves, local traffic.
one('empty-reject', buildPacket({ src: '10.244.1.5', dst: '10.96.0.99', proto: 'tcp', sport: 41000, dport: 443, flags: 'S' }), 7000);
one('empty-drop', buildPacket({ src: '10.244.1.5', dst: '10.96.0.98', proto: 'tcp', sport: 41001, dport: 80, flags: 'S' }), 7001);
one('no-service', buildPacket({ src: '10.244.1.5', dst: '10.96.0.55', proto: 'tcp', sport: 41002, dport: 80, flags: 'S' }), 7002);
one('wrong-port', buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 41003, dport: 81, flags: 'S' }), 7003);
one('local', { bytes: buildPacket({ src: '192.168.49.2', dst: '10.96.0.80', proto: 'tcp', sport: 41004, dport: 80, flags: 'S' }), local: true }, 7004);
one('ttl-1', buildPacket({ src: '203.0.113.99', dst: '10.96.0.80', proto: 'tcp', sport: 41005, dport: 80, flags: 'S', ttl: 1 }), 7005);
one('fragment', buildPacket({ src: '10.244.1.5', dst: '10.96.0.10', proto: 'udp', sport: 41006, dport: 53, payload: 'x'.repeat(64), frag: { offset: 0, more: true, id: 99 } }), 7006);

// 8. Malformed bytes: empty, truncated headers, wrong version, a lying length, fixed garbage.
{
  const good = buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 42000, dport: 80, flags: 'S' });
  const badVersion = good.slice(); badVersion[0] = 0x55;
  const longLen = good.slice(); longLen[2] = 0x05; longLen[3] = 0xdc;
  const shortIhl = good.slice(); shortIhl[0] = 0x43;
  const good6 = buildPacket({ src: 'fd00:244::1:1', dst: 'fd00:96::80', proto: 'tcp', sport: 42001, dport: 80, flags: 'S' });
  const malformed = [
    new Uint8Array(0), good.slice(0, 1), good.slice(0, 19), good.slice(0, 24), badVersion, longLen, shortIhl,
    good6.slice(0, 39), good6.slice(0, 50),
  ];
  for (let k = 0; k < 12; k++) malformed.push(garbage(0x9e3779b9 + k, 20 + k * 13));
  for (let k = 0; k < 4; k++) { const g = garbage(0xc0ffee + k, 60); g[0] = k < 2 ? 0x45 : 0x60; malformed.push(g); }
  batch('malformed', malformed, 8000);
}

// 9. Expiry: past the UDP and SYN_SENT timeouts; late packets on reaped and on live flows.
const reapedAt130s = expire(131_000);
batch('after-expiry', [
  buildPacket({ src: queries[0].src, dst: '10.96.0.10', proto: 'udp', sport: queries[0].sport, dport: 53, payload: 'late' }),
  buildPacket({ src: pods[0].src, dst: '10.96.0.80', proto: 'tcp', sport: pods[0].sport, dport: 80, flags: 'PA', seq: 1001 + pods[0].sport, ack: 7001, payload: 'GET /' }),
  buildPacket({ src: '203.0.113.21', dst: '10.96.0.80', proto: 'tcp', sport: 51000, dport: 80, flags: 'A', seq: 502, ack: 902 }),
  buildPacket({ src: pods6[1].src, dst: 'fd00:96::80', proto: 'tcp', sport: pods6[1].sport, dport: 80, flags: 'A', seq: 43, ack: 78 }),
], 131_500);

// 10. Time near the u32 wrap: new flows before it, their replies after it.
const wrapSyns = batch('wrap-syn', [0, 1, 2, 3].map((k) => buildPacket({ src: '10.244.7.7', dst: '10.96.0.80', proto: 'tcp', sport: 43000 + k, dport: 80, flags: 'S' })), 0xffff_fff0);
batch('wrap-synack', wrapSyns.map((r) => {
  const o = outOf(r);
  return buildPacket({ src: o.dst, dst: o.src, proto: 'tcp', sport: o.dport, dport: o.sport, flags: 'SA', ack: o.seq + 1 });
}), 0x20);
const reapedAfterWrap = expire(0x40);

const snapshot = dp.snapshot(0x40);
const restoredInto = await Dataplane.create(OPTIONS);
const restored = restoredInto.restore(snapshot);

// ---- the same calls into a core configured from the .svp alone ----

const fromSvp = await Dataplane.load(svp);
const replayed = [];
for (const c of calls) {
  if (c.expireAt !== undefined) { replayed.push({ reaped: fromSvp.expire(c.expireAt) }); continue; }
  for (const r of fromSvp.processBatch(c.packets, c.nowMs)) replayed.push({ verdict: r.verdict, reason: r.reason ?? null, out: r.packet ? hex(r.packet) : null });
}
const direct = [];
let at = 0;
for (const c of calls) {
  if (c.expireAt !== undefined) { direct.push({ reaped: c.expireAt === 131_000 ? reapedAt130s : reapedAfterWrap }); continue; }
  for (let k = 0; k < c.packets.length; k++, at++) direct.push({ verdict: log[at].verdict, reason: log[at].reason, out: log[at].out });
}
const svpMatches = JSON.stringify(replayed) === JSON.stringify(direct) &&
  JSON.stringify(fromSvp.conntrack(0x40)) === JSON.stringify(dp.conntrack(0x40)) &&
  JSON.stringify(fromSvp.stats()) === JSON.stringify(dp.stats());

async function svpFailure(bytes) {
  try {
    await Dataplane.load(bytes);
    return { name: 'none', message: '' };
  } catch (e) {
    return { name: e.name, message: e.message };
  }
}
const svpFlipped = svp.slice(); svpFlipped[svp.length - 5] ^= 0x10;
const svpV2 = svp.slice(); svpV2[4] = 2;
const svpFailures = {
  flipped: await svpFailure(svpFlipped),
  truncated: await svpFailure(svp.slice(0, svp.length - 16)),
  version2: await svpFailure(svpV2),
  notSvp: await svpFailure(new TextEncoder().encode('iptables-restore text is not a compiled config')),
};

// ---- failure checks: a corrupted module and a wrong ABI version ----

function decodeBase64(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function readLeb(b, at) {
  let v = 0, shift = 0, byte;
  do { byte = b[at++]; v += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80);
  return [v, at];
}

/** Offsets of each top-level section (WebAssembly core spec §5.5.2): id → [start, end) of its contents. */
function sections(b) {
  const out = new Map();
  let at = 8;
  while (at < b.length) {
    const id = b[at];
    const [size, start] = readLeb(b, at + 1);
    out.set(id, [start, start + size]);
    at = start + size;
  }
  return out;
}

/** The module with `abiVersion` returning `version`; only for the body `i32.const <1-byte> end`. */
function withAbiVersion(bytes, version) {
  const b = bytes.slice();
  const s = sections(b);
  let importedFuncs = 0;
  if (s.has(2)) {
    let [n, at] = readLeb(b, s.get(2)[0]);
    for (; n > 0; n--) {
      let len;
      [len, at] = readLeb(b, at); at += len;
      [len, at] = readLeb(b, at); at += len;
      const kind = b[at++];
      if (kind === 0) { importedFuncs++; [, at] = readLeb(b, at); }
      else if (kind === 1) { at += 1; const flags = b[at++]; [, at] = readLeb(b, at); if (flags & 1) [, at] = readLeb(b, at); }
      else if (kind === 2) { const flags = b[at++]; [, at] = readLeb(b, at); if (flags & 1) [, at] = readLeb(b, at); }
      else if (kind === 3) at += 2;
      else throw new Error(`import kind ${kind} not handled`);
    }
  }
  let funcIndex = -1;
  let [n, at] = readLeb(b, s.get(7)[0]);
  for (; n > 0; n--) {
    let len;
    [len, at] = readLeb(b, at);
    const name = new TextDecoder().decode(b.subarray(at, at + len)); at += len;
    const kind = b[at++];
    let index;
    [index, at] = readLeb(b, at);
    if (name === 'abiVersion' && kind === 0) funcIndex = index;
  }
  if (funcIndex < 0) throw new Error('no abiVersion export');
  [n, at] = readLeb(b, s.get(10)[0]);
  for (let k = 0; k < funcIndex - importedFuncs; k++) { let len; [len, at] = readLeb(b, at); at += len; }
  const [len, body] = readLeb(b, at);
  // locals count 0, i32.const (0x41) imm, end (0x0b)
  if (len !== 4 || b[body] !== 0 || b[body + 1] !== 0x41 || b[body + 3] !== 0x0b || version > 63) {
    throw new Error('abiVersion body is not `i32.const N end`; cannot patch');
  }
  b[body + 2] = version;
  return b;
}

async function failure(wasm) {
  try {
    await Dataplane.create({ ...OPTIONS, wasm });
    return { name: 'none', message: '' };
  } catch (e) {
    return { name: e instanceof Error ? e.name : typeof e, message: e instanceof Error ? e.message : String(e) };
  }
}

const core = decodeBase64(wasmBase64);
const badMagic = core.slice(); badMagic[0] ^= 0xff;
const badType = core.slice(); badType[sections(core).get(1)[0] + 1] ^= 0xff; // first functype's 0x60 form byte
const corrupt = { magic: await failure(badMagic), typeSection: await failure(badType) };
const abi = await failure(withAbiVersion(core, 2));
const intact = await failure(withAbiVersion(core, 1));
console.error(JSON.stringify({ corruptMessages: { magic: corrupt.magic.message, typeSection: corrupt.typeSection.message } }));

// ---- the document ----

console.log(JSON.stringify({
  servicesLoaded: loaded,
  packets: log,
  reaped: { at131s: reapedAt130s, afterWrap: reapedAfterWrap },
  conntrack: dp.conntrack(0x40),
  stats: dp.stats(),
  snapshot: { bytes: snapshot.length, sha256: await sha256(snapshot), restored },
  svp: { bytes: svp.length, sha256: await sha256(svp), calls: calls.length, matches: svpMatches, failures: svpFailures },
  failures: {
    corruptMagic: { name: corrupt.magic.name, ours: corrupt.magic.message.startsWith('svcplane core module is invalid: ') },
    corruptTypeSection: { name: corrupt.typeSection.name, ours: corrupt.typeSection.message.startsWith('svcplane core module is invalid: ') },
    abiVersion2: abi,
    abiVersion1Patched: intact,
  },
}, null, 1));
