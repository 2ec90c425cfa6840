// The playground's engine (what runs in the Web Worker) under Node: its answers equal the Node
// API's for the same objects and packets, every preset loads and traces, measured outcomes use the
// same keys as expected ones, edits report what changed, and the virtual clock expires affinity.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../host-node/dataplane.js';
import { Playground } from '../../host-browser/src/engine/playground.js';
import { PRESETS, NODE, presetById, scaleLocate, scaleObjects, scaleVip, type PacketSpec } from '../../host-browser/src/presets.js';
import type { WirePacket } from '../../host-browser/src/engine/outcomes.js';

const wire = (p: PacketSpec): WirePacket => ({ src: p.src, dst: p.dst, proto: p.proto, sport: p.sport, dport: p.dport, local: p.from === 'node' });

async function loaded(id: string, mode?: 'iptables' | 'ipvs' | 'direct', scheduler = 'rr'): Promise<Playground> {
  const pg = new Playground();
  const preset = presetById(id)!;
  const r = await pg.load({ source: { preset: id }, mode: mode ?? preset.mode, scheduler, fresh: true });
  expect(r.issues).toEqual([]);
  return pg;
}

describe('playground engine', () => {
  it('gives the Node API answers for the same objects and packet (trace and processed packets)', async () => {
    const preset = presetById('clusterip')!;
    const pg = await loaded('clusterip');
    const dp = await Dataplane.create({ nodeIPs: [NODE.ip], podCIDR: NODE.podCIDR, seed: 1, conntrackCapacity: 1 << 18 });
    expect(dp.apply(preset.yaml!, { nodeName: NODE.name }).issues).toEqual([]);
    const p = wire(preset.packet);
    const mine = pg.packet(p, 1000, false).trace;
    const theirs = dp.trace({ src: p.src, dst: p.dst, proto: p.proto, sport: p.sport, dport: p.dport, from: 'external', nowMs: 1000 });
    expect(mine.outcomes.map((o) => [o.to, o.probability]).sort()).toEqual(theirs.outcomes.map((o) => [o.to, o.probability]).sort());
    expect(mine.steps.map((s) => s.text)).toEqual(theirs.steps.map((s) => s.text ?? '(end of chain)'));
    // Real packets: the same seed, ports and times give the same choices.
    const sent = pg.send(p, 300, 2000).measured;
    const { buildPacket, decodePacket } = await import('../../host-node/core/packet.js');
    const node: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const r = dp.process({ bytes: buildPacket({ src: p.src, dst: p.dst, proto: 'tcp', sport: 20001 + i, dport: p.dport, flags: 'S' }), local: false }, 2000);
      const d = decodePacket(r.packet!);
      const key = `FORWARD → ${d.dst}:${d.dport}`;
      node[key] = (node[key] ?? 0) + 1;
    }
    expect(Object.fromEntries(sent.counts.map((c) => [c.key, c.count]))).toEqual(node);
  });

  it('direct mode: a cluster IP\'s port no Service has is refused, in the playground as through the Node API and on a real packet', async () => {
    const preset = presetById('clusterip')!;
    const pg = await loaded('clusterip', 'direct');
    const dp = await Dataplane.create({ nodeIPs: [NODE.ip], podCIDR: NODE.podCIDR, seed: 1 });
    expect(dp.apply(preset.yaml!, { mode: 'direct', nodeName: NODE.name }).issues).toEqual([]);
    const p = { ...wire(preset.packet), dport: preset.packet.dport + 1 };
    const mine = pg.packet(p, 1000, false).trace;
    const theirs = dp.trace({ src: p.src, dst: p.dst, proto: p.proto, sport: p.sport, dport: p.dport, from: 'external', nowMs: 1000 });
    expect(mine.outcomes.map((o) => [o.verdict, o.reason])).toEqual([['REPLY', 'no_service']]);
    expect(theirs.outcomes.map((o) => [o.verdict, o.reason])).toEqual([['REPLY', 'no_service']]);
    expect(mine.steps.map((s) => s.text)).toEqual(theirs.steps.map((s) => s.text));
    expect(mine.steps.at(-1)!.text).toMatch(/is a cluster IP, and no Service has TCP port 81 on it/);
    const { buildPacket } = await import('../../host-node/core/packet.js');
    expect(dp.process({ bytes: buildPacket({ src: p.src, dst: p.dst, proto: 'tcp', sport: p.sport, dport: p.dport, flags: 'S' }), local: false }, 1000).verdict).toBe('REPLY');
  });

  it('every preset loads, traces to outcomes summing to 1, and the measured keys are among the expected ones', async () => {
    for (const preset of PRESETS.filter((p) => p.generate === undefined)) {
      const pg = await loaded(preset.id);
      const p = wire(preset.packet);
      const { trace, measured } = pg.send(p, 400, 1000);
      const total = trace.outcomes.reduce((a, o) => a + o.probability, 0);
      expect(total, preset.id).toBeCloseTo(1, 9);
      const expected = new Set([...trace.outcomes, ...trace.longRun ?? []].map((o) => o.key));
      for (const c of measured.counts) expect(expected, `${preset.id}: ${c.key}`).toContain(c.key);
      expect(measured.sent).toBe(400);
    }
  });

  it('IPVS mode: for every preset and scheduler kind, measured outcomes are among the expected ones', async () => {
    for (const preset of PRESETS.filter((p) => p.generate === undefined)) {
      for (const scheduler of ['rr', 'wlc', 'sh', 'mh']) {
        const pg = await loaded(preset.id, 'ipvs', scheduler);
        const { trace, measured } = pg.send(wire(preset.packet), 60, 0);
        const expected = new Set([...trace.outcomes, ...trace.longRun ?? []].map((o) => o.key));
        for (const c of measured.counts) expect(expected, `${preset.id} ${scheduler}: ${c.key}`).toContain(c.key);
      }
    }
  });

  it('shows each scene\'s point: thirds, ETP=Local, REJECT, terminating fallback, hairpin masquerade', async () => {
    const outcomes = async (id: string) => (await loaded(id)).packet(wire(presetById(id)!.packet), 0, false).trace.outcomes;
    const thirds = await outcomes('clusterip');
    expect(thirds.map((o) => o.probability)).toEqual([1 / 3, 1 / 3, 1 / 3].map((x) => expect.closeTo(x, 6)));
    expect(await outcomes('nodeport-local')).toEqual([expect.objectContaining({ to: '10.244.1.21:8080', masq: false, probability: 1 })]);
    const reject = await outcomes('no-endpoints');
    expect(reject).toHaveLength(1);
    expect(reject[0]!.verdict).toBe('REPLY');
    const term = await outcomes('terminating');
    expect(term.map((o) => o.to).sort()).toEqual(['10.244.1.51:8080', '10.244.2.52:8080']);
    const hairpin = await outcomes('hairpin');
    expect(hairpin.find((o) => o.to === '10.244.1.31:8080')?.masq).toBe(true);
    expect(hairpin.find((o) => o.to === '10.244.2.32:8080')?.masq).toBe(false);
    // Each outcome names the rules that made it: its endpoint chain's DNAT (whose text sends it
    // there), the masquerade where there is one, the REJECT of a Service without endpoints.
    for (const o of [...thirds, ...hairpin]) {
      const dnat = o.by?.find((b) => / DNAT$/.test(b.label));
      expect(dnat?.label).toMatch(/^nat\/KUBE-SEP-[A-Z0-9]{16} #\d+ DNAT$/);
      expect(dnat?.text).toContain(`--to-destination ${o.to}`);
      expect(o.by!.some((b) => / MASQUERADE$/.test(b.label))).toBe(o.masq);
    }
    expect(reject[0]!.by?.map((b) => b.label)).toEqual([expect.stringMatching(/^filter\/KUBE-SERVICES #\d+ REJECT$/)]);
  });

  it('a sent packet\'s own connection is reported as existing; a burst still expects new connections', async () => {
    const preset = presetById('clusterip')!;
    const pg = await loaded('clusterip');
    const p = wire(preset.packet);
    expect(pg.packet(p, 0, false).trace.existing).toBe(false);
    const sent = pg.packet(p, 0, true);
    expect(sent.sent!.delivered.verdict).toBe('FORWARD');
    expect(sent.conntrack).toHaveLength(1);
    const again = pg.packet(p, 1, false).trace;
    expect(again.existing).toBe(true);
    expect(again.outcomes).toEqual([expect.objectContaining({ key: sent.sent!.key, probability: 1 })]);
    const burst = pg.send(p, 30, 2);
    expect(burst.trace.existing).toBe(false);
    expect(burst.trace.outcomes).toHaveLength(3);
    // The flows listed with a trace are the table at that time: 31 live at 3 s, all reaped (and
    // the packet's connection no longer existing) once SYN_SENT's 120 s have passed.
    const later = pg.packet(p, 3, false);
    expect(later.trace.existing).toBe(true);
    expect(later.conntrack).toEqual(pg.conntrack(3));
    expect(later.conntrack).toHaveLength(31);
    const expired = pg.packet(p, 130_000, false);
    expect(expired.trace.existing).toBe(false);
    expect(expired.trace.outcomes).toHaveLength(3);
    expect(expired.conntrack).toEqual([]);
    expect(pg.packet(p, 130_001, true).conntrack).toHaveLength(1);   // sent: listed after it went through
  });

  it('marks the visited rules in the iptables-save view', async () => {
    const pg = await loaded('clusterip');
    const { trace } = pg.send(wire(presetById('clusterip')!.packet), 1, 0);
    const hits = trace.rules[0]!.lines.filter((l) => l.mark === 'hit').map((l) => l.text);
    expect(hits).toContain('-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
    expect(hits.some((l) => l.includes('-j DNAT --to-destination'))).toBe(true);
  });

  it('keeps affinity until the virtual clock passes its timeout', async () => {
    const preset = presetById('affinity')!;
    const pg = await loaded('affinity');
    const p = wire(preset.packet);
    pg.packet(p, 1000, true);
    const pinned = pg.packet(p, 30_000, false).trace.outcomes;
    expect(pinned).toHaveLength(1);
    expect(pinned[0]!.probability).toBe(1);
    expect(pg.send(p, 150, 31_000).measured.counts).toHaveLength(1);
    expect(pg.conntrack(31_000).length).toBe(151);
    // The traced connection's own conntrack entry (SYN_SENT, 120 s) would answer first: look past it.
    const later = pg.packet(p, 200_000, false).trace.outcomes;
    expect(later).toHaveLength(3);
    expect(pg.packet({ ...p, sport: 1 }, 31_000 + 59_000, false).trace.outcomes).toHaveLength(1);
    expect(pg.packet({ ...p, sport: 1 }, 31_000 + 61_000, false).trace.outcomes).toHaveLength(3);
    expect(pg.conntrack(31_000 + 3_600_000)).toEqual([]);
  });

  it('an edit syncs only the changed Service and reports the rules that differ', async () => {
    const preset = presetById('clusterip')!;
    const pg = new Playground();
    await pg.load({ source: { yaml: preset.yaml! }, mode: 'iptables', scheduler: 'rr', fresh: true });
    const edited = preset.yaml!.replace('  - addresses: [10.244.1.13]', '  - addresses: [10.244.1.14]');
    const r = await pg.load({ source: { yaml: edited }, mode: 'iptables', scheduler: 'rr', fresh: false });
    expect(r.change.full).toBe(false);
    expect(r.phases.map((p) => p.phase)).toEqual(['starting the core', 'kube-proxy sync: render rules, compile, swap', 'rules view', 'diff', 'listing services', 'rules digest']);
    expect(r.phases.every((p) => p.ms >= 0 && Number.isFinite(p.ms))).toBe(true);
    expect(r.change.changedServices).toEqual(['default/web']);
    expect(r.change.diff.added.some((l) => l.includes('10.244.1.14:8080'))).toBe(true);
    expect(r.change.diff.removed.some((l) => l.includes('10.244.1.13:8080'))).toBe(true);
    // kube-proxy rewrites the Service's chains whole; only the endpoint's rules really differ.
    expect(r.change.rewrittenChains.some((c) => c.startsWith('nat/KUBE-SVC-'))).toBe(true);
    expect(r.change.changedChains.count).toBe(r.change.changedChains.names.length);
    expect(r.change.changedChains.count).toBeGreaterThan(0);
    expect(r.change.changedChains.names).not.toContain('KUBE-SERVICES');
    expect(r.change.changedChains.names.every((c) => c.startsWith('KUBE-SEP-') || c.startsWith('KUBE-SVC-'))).toBe(true);
  });

  it('a load that explains its packet answers as a load and then the packet call would', async () => {
    const preset = presetById('clusterip')!;
    const edited = preset.yaml!.replace('  - addresses: [10.244.1.13]', '  - addresses: [10.244.1.14]');
    const apart = new Playground(), together = new Playground();
    const base = { mode: 'iptables' as const, scheduler: 'rr' };
    for (const [yaml, fresh] of [[preset.yaml!, true], [edited, false]] as const) {
      const a = await apart.load({ source: { yaml }, ...base, fresh });
      const ap = apart.packet(wire(preset.packet), 0, false);
      const t = await together.load({ source: { yaml }, ...base, fresh, explain: { packet: wire(preset.packet), nowMs: 0 } });
      expect(a.packet).toBeUndefined();
      expect(t.change).toEqual(a.change);
      expect(t.packet!.trace).toEqual(ap.trace);
      expect(t.packet!.conntrack).toEqual(ap.conntrack);
      expect(t.views).toEqual(ap.trace.rules);
      expect(t.phases.map((p) => p.phase)).toContain('packet');
      expect(t.phases.map((p) => p.phase)).not.toContain('rules digest');
    }
    // A name that does not resolve is an outcome of its own; a packet the core cannot take comes
    // back as an error beside the load, which stands, with its own rules view.
    const named = await together.load({ source: { yaml: edited }, ...base, fresh: false, explain: { packet: { ...wire(preset.packet), name: 'nope.default.svc.cluster.local' }, nowMs: 0 } });
    expect(named.packet!.trace.outcomes.map((o) => o.reason)).toEqual(['dns']);
    const bad = await together.load({ source: { yaml: edited }, ...base, fresh: false, explain: { packet: { ...wire(preset.packet), src: '10.244.1.500' }, nowMs: 0 } });
    expect(bad.packet).toBeUndefined();
    expect(bad.packetError).toMatch(/10\.244\.1\.500/);
    expect(bad.views.length).toBeGreaterThan(0);
    expect(bad.phases.map((p) => p.phase)).toContain('rules digest');
  });

  it('reports a bad field with its line and keeps the rest', async () => {
    const preset = presetById('clusterip')!;
    const pg = new Playground();
    const bad = preset.yaml!.replace('port: 80,', 'port: 99999,');
    const r = await pg.load({ source: { yaml: bad }, mode: 'iptables', scheduler: 'rr', fresh: true });
    const line = bad.split('\n').findIndex((l) => l.includes('99999')) + 1;
    expect(r.issues).toEqual([expect.objectContaining({ line, path: 'spec.ports[0].port', object: 'Service default/web' })]);
  });

  it('IPVS mode: rr spreads evenly, sh pins one client, compare runs both modes', async () => {
    const preset = presetById('ipvs-schedulers')!;
    const p = wire(preset.packet);
    const rr = await loaded('ipvs-schedulers', 'ipvs', 'rr');
    const view = rr.packet(p, 0, false);
    expect(view.trace.rules[0]!.title).toBe('ipvsadm -Ln');
    expect(view.trace.rules[0]!.lines.some((l) => l.mark === 'hit' && l.text.includes('10.96.0.80:80'))).toBe(true);
    expect(view.trace.longRun!.map((o) => o.probability)).toEqual([0.25, 0.25, 0.25, 0.25]);
    const even = rr.send(p, 400, 0).measured.counts;
    expect(even.map((c) => c.count)).toEqual([100, 100, 100, 100]);
    const sh = await loaded('ipvs-schedulers', 'ipvs', 'sh');
    expect(sh.send(p, 400, 0).measured.counts).toHaveLength(1);
    const cols = await rr.compare(p, 0, [{ mode: 'iptables', scheduler: 'rr' }, { mode: 'ipvs', scheduler: 'sh' }], 200);
    expect(cols.map((c) => c.label)).toEqual(['iptables', 'ipvs sh']);
    expect(cols[0]!.outcomes).toHaveLength(4);
    expect(cols[1]!.measured.counts).toHaveLength(1);
  });

  it('direct mode: every preset explains the outcomes iptables gives, and the packets sent land only there', async () => {
    for (const preset of PRESETS.filter((p) => p.generate === undefined)) {
      const p = wire(preset.packet);
      const ipt = (await loaded(preset.id, 'iptables')).packet(p, 0, false).trace.outcomes;
      const pg = await loaded(preset.id, 'direct');
      const { trace, measured } = pg.send(p, 400, 1000);
      expect(trace.rules[0]!.title, preset.id).toBe('direct service table');
      expect(trace.outcomes.map((o) => [o.key, o.probability]).sort(), preset.id).toEqual(ipt.map((o) => [o.key, expect.closeTo(o.probability, 9)]).sort());
      // Nothing outside the expected outcomes; without affinity every one of them shows up among 400
      // new connections, with affinity the one client keeps the first pod it got.
      const keys = measured.counts.map((c) => c.key);
      for (const k of keys) expect(trace.outcomes.map((o) => o.key), preset.id).toContain(k);
      expect(keys.length, preset.id).toBe(preset.id === 'affinity' ? 1 : trace.outcomes.length);
    }
  });

  it('direct mode: the entry the packet used is marked, and ClientIP affinity follows the virtual clock', async () => {
    const preset = presetById('affinity')!;
    const p = wire(preset.packet);
    const pg = await loaded('affinity', 'direct');
    const first = pg.packet(p, 1000, false).trace;
    expect(first.outcomes).toHaveLength(3);
    expect(first.rules[0]!.lines.filter((l) => l.mark === 'hit').map((l) => l.text)).toEqual([
      'default/cart:http TCP frontends cluster 10.96.0.100:80',
      'default/cart:http TCP endpoints(Cluster) 10.244.1.11:8080 10.244.1.13:8080 10.244.2.12:8080',
      'default/cart:http TCP policy internal=Cluster external=Cluster affinity=ClientIP 60s',
    ]);
    const sent = pg.packet(p, 1000, true).sent!;
    const pinned = pg.packet({ ...p, sport: 1 }, 30_000, false).trace.outcomes;
    expect(pinned).toEqual([expect.objectContaining({ key: sent.key, probability: 1 })]);
    expect(pg.send(p, 100, 30_000).measured.counts).toEqual([{ key: sent.key, count: 100 }]);
    // The burst stamped the client again at 30 s: pinned until 90 s, spread after.
    expect(pg.packet({ ...p, sport: 1 }, 90_000, false).trace.outcomes).toHaveLength(1);
    expect(pg.packet({ ...p, sport: 1 }, 90_001, false).trace.outcomes).toHaveLength(3);
    expect(pg.send({ ...p, sport: 2 }, 300, 90_001).measured.counts.length).toBeGreaterThan(0);
  });

  it('direct mode: an edit rewrites only the changed entry and the diff names it', async () => {
    const preset = presetById('clusterip')!;
    const pg = new Playground();
    await pg.load({ source: { yaml: preset.yaml! }, mode: 'direct', scheduler: 'rr', fresh: true });
    const edited = preset.yaml!.replace('  - addresses: [10.244.1.13]', '  - addresses: [10.244.1.14]');
    const r = await pg.load({ source: { yaml: edited }, mode: 'direct', scheduler: 'rr', fresh: false });
    expect(r.change.full).toBe(false);
    expect(r.change.changedServices).toEqual(['default/web']);
    expect(r.change.rewrittenChains).toEqual(['1 entry written, 0 removed']);
    expect(r.change.diff.added).toEqual(['default/web:http TCP endpoints(Cluster) 10.244.1.11:8080 10.244.1.14:8080 10.244.2.12:8080']);
    expect(r.change.diff.removed).toEqual(['default/web:http TCP endpoints(Cluster) 10.244.1.11:8080 10.244.1.13:8080 10.244.2.12:8080']);
    expect(r.change.changedChains).toEqual({ names: ['default/web:http'], count: 1 });
    expect(pg.packet(wire(preset.packet), 0, false).trace.outcomes.map((o) => o.to)).toContain('10.244.1.14:8080');
  });

  it('compare puts direct next to iptables and ipvs', async () => {
    const preset = presetById('nodeport-local')!;
    const pg = await loaded('nodeport-local');
    const cols = await pg.compare(wire(preset.packet), 0, [{ mode: 'iptables', scheduler: 'rr' }, { mode: 'direct', scheduler: 'rr' }, { mode: 'ipvs', scheduler: 'rr' }], 200);
    expect(cols.map((c) => c.label)).toEqual(['iptables', 'direct', 'ipvs rr']);
    // The same answers; the rules that decided them are each mode's own (direct has none).
    const answers = (os: typeof cols[0]['outcomes']) => os.map(({ by: _by, ...o }) => o);
    expect(answers(cols[1]!.outcomes)).toEqual(answers(cols[0]!.outcomes));
    expect(cols[0]!.outcomes[0]!.by?.map((b) => b.label)).toEqual([expect.stringMatching(/^nat\/KUBE-SEP-\w+ #2 DNAT$/)]);
    expect(cols[1]!.measured).toEqual({ sent: 200, counts: [{ key: 'FORWARD → 10.244.1.21:8080', count: 200 }] });
  });

  it('a partial sync diffs only the chains it rewrote, with the same answer as diffing the whole text', async () => {
    const { diffLines, isIptablesRule } = await import('../../host-browser/src/engine/line-diff.js');
    const { applyFormEdit } = await import('../../host-browser/src/ui/objects-model.js');
    const base = presetById('clusterip')!.yaml!;
    const edits = [
      base.replace('  - addresses: [10.244.1.13]', '  - addresses: [10.244.1.14]'),   // one endpoint
      applyFormEdit(base, { op: 'add-service' }),                                       // new chains, KUBE-SERVICES
      base.replace('port: 80,', 'port: 81,'),                                           // the Service's port
    ];
    for (const edited of edits) {
      const pg = new Playground();
      const text = (r: Awaited<ReturnType<Playground['load']>>) => r.views[0]!.lines.map((l) => l.text).join('\n');
      const before = text(await pg.load({ source: { yaml: base }, mode: 'iptables', scheduler: 'rr', fresh: true }));
      const r = await pg.load({ source: { yaml: edited }, mode: 'iptables', scheduler: 'rr', fresh: false });
      expect(r.change.full).toBe(false);
      const whole = diffLines(before, text(r), isIptablesRule);
      expect(whole.added.length + whole.removed.length).toBeGreaterThan(0);
      expect([...r.change.diff.added].sort()).toEqual([...whole.added].sort());
      expect([...r.change.diff.removed].sort()).toEqual([...whole.removed].sort());
    }
  });

  it('after partial syncs the rules view equals the live rules read whole (chains added, changed, deleted)', async () => {
    const { IptablesRunner } = await import('../../host-browser/src/engine/modes.js');
    const { applyFormEdit } = await import('../../host-browser/src/ui/objects-model.js');
    const base = presetById('clusterip')!.yaml!;
    const two = applyFormEdit(applyFormEdit(base, { op: 'add-service' }), { op: 'add-service' });
    const steps = [
      two,                                                                        // two Services added
      two.replace('  - addresses: [10.244.1.13]', '  - addresses: [10.244.1.14]'),  // an endpoint moved
      applyFormEdit(two, { op: 'remove-service', service: 'default/app-1' }),      // one removed
      applyFormEdit(two, { op: 'set', service: 'default/web', field: 'type', value: 'NodePort' }),
    ];
    const lines = (r: InstanceType<typeof IptablesRunner>) => r.views()[0]!.lines.map((l) => l.text);
    const live = await IptablesRunner.create();
    live.load(base, () => {});
    for (const yaml of steps) {
      const r = live.load(yaml, () => {});
      expect(r.change.full).toBe(false);
      const fresh = await IptablesRunner.create();
      fresh.load(yaml, () => {});
      expect(lines(live)).toEqual(lines(fresh));
      expect(live.views()[0]!.total).toBe(fresh.views()[0]!.total);
    }
  });

  it('edits of a generated scene reach the core as only the objects that changed', async () => {
    const { sceneDelta, Scene } = await import('../../host-browser/src/engine/playground.js');
    const svc = (name: string, ip: string) => ({ kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIP: ip } });
    const objects = [svc('a', '10.96.0.1'), svc('b', '10.96.0.2')];
    const scene = new Scene('two', objects);
    const a2 = svc('a', '10.96.0.9'), c = svc('c', '10.96.0.3');
    expect(sceneDelta(scene, [], [a2])).toEqual({ objects: [a2], removed: [] });
    // a back to the scene's own, c added; then c dropped again.
    expect(sceneDelta(scene, [a2], [c])).toEqual({ objects: [objects[0], c], removed: [] });
    expect(sceneDelta(scene, [c], [])).toEqual({ objects: [], removed: ['Service default/c'] });
    expect(sceneDelta(scene, [a2], [svc('a', '10.96.0.9')])).toEqual({ objects: [], removed: [] });
  });

  it('a generated scene finds its objects by layout exactly where an index would', async () => {
    const { Scene } = await import('../../host-browser/src/engine/playground.js');
    const objects = scaleObjects(60);
    const located = new Scene('scale', objects, scaleLocate);
    const indexed = new Scene('scale', objects);
    const keys = objects.map((o) => {
      const x = o as { kind: string; metadata: { namespace: string; name: string } };
      return `${x.kind}/${x.metadata.namespace}/${x.metadata.name}`;
    });
    keys.forEach((k, i) => expect(located.at(k), k).toBe(i));
    const absent = ['Service/default/svc-60', 'EndpointSlice/default/svc-60-abc12', 'Service/kube-system/svc-1', 'EndpointSlice/default/svc-1',
      'Service/default/svc-1-abc12', 'Service/default/svc-01', 'Service/default/svc-', 'Pod/default/svc-1', 'Service/default/svc-1 '];
    for (const k of [...keys, ...absent]) expect(located.at(k), k).toBe(indexed.at(k));
    for (const k of absent) expect(located.at(k), k).toBeUndefined();
  });

  it('a single-Service edit of the 20k scene changes that Service only, and its trace follows', async () => {
    const preset = presetById('scale-20k')!;
    const pg = new Playground();
    const r0 = await pg.load({ source: { preset: preset.id }, mode: 'iptables', scheduler: 'rr', fresh: true });
    // 20,000 KUBE-SVC and 40,000 KUBE-SEP chains came in: counted, too many to name.
    expect(r0.change.changedChains.count).toBeGreaterThan(60_000);
    expect(r0.change.changedChains.names).toEqual([]);
    const edit = (i: number, ip: string) => ({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: `svc-${i}-abc12`, namespace: 'default', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
      endpoints: [{ addresses: [ip], conditions: { ready: true }, nodeName: 'node-a' }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    });
    const p = (i: number): WirePacket => ({ src: '10.244.1.5', dst: scaleVip(i), proto: 'tcp', sport: 40000, dport: 80, local: false });
    const before = pg.packet(p(7), 0, false).trace.outcomes.map((o) => o.to);
    expect(before).toHaveLength(2);
    const r1 = await pg.load({ source: { preset: preset.id, edits: [edit(7, '10.250.0.7')] }, mode: 'iptables', scheduler: 'rr', fresh: false });
    expect(r1.change.changedServices).toEqual(['default/svc-7']);
    expect(r1.serviceCount).toBe(20_000);
    expect(pg.packet(p(7), 0, false).trace.outcomes.map((o) => o.to)).toEqual(['10.250.0.7:8080']);
    // The next edit replaces it: svc-7 is the scene's again, svc-9 changes.
    const r2 = await pg.load({ source: { preset: preset.id, edits: [edit(9, '10.250.0.9')] }, mode: 'iptables', scheduler: 'rr', fresh: false });
    expect(r2.change.changedServices).toEqual(['default/svc-7', 'default/svc-9']);
    expect(pg.packet(p(7), 0, false).trace.outcomes.map((o) => o.to).sort()).toEqual([...before].sort());
    expect(pg.packet(p(9), 0, false).trace.outcomes.map((o) => o.to)).toEqual(['10.250.0.9:8080']);
    const hits = pg.packet(p(9), 0, false).trace.rules[0]!.lines.filter((l) => l.mark === 'hit').map((l) => l.text);
    expect(hits.some((l) => l.includes('--to-destination 10.250.0.9:8080'))).toBe(true);
    // The digest accounts for all 200,000-odd lines: those shown plus those its gaps count.
    const view = pg.packet(p(9), 0, false).trace.rules[0]!;
    const gaps = view.lines.filter((l) => l.mark === 'gap').reduce((n, l) => n + Number(/^… ([\d,]+) lines/.exec(l.text)![1]!.replace(/,/g, '')), 0);
    expect(view.lines.filter((l) => l.mark !== 'gap').length + gaps).toBe(view.total);
    expect(view.total).toBeGreaterThan(100_000);

    // The builder's list follows Service edits: one it lists, one past its end, one added (which
    // the cluster DNS of the edited scene also answers for).
    const svc = (i: number, port: number, ip = scaleVip(i)) => ({
      apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: 'default' },
      spec: { type: 'ClusterIP', clusterIP: ip, ports: [{ name: 'http', port, targetPort: 8080, protocol: 'TCP' }] },
    });
    const listed = await pg.load({ source: { preset: preset.id, edits: [svc(3, 81)] }, mode: 'iptables', scheduler: 'rr', fresh: false });
    expect(listed.services).toHaveLength(500);
    expect(listed.services![3]).toEqual({ id: 'default/svc-3:http', clusterIP: scaleVip(3), port: 81, protocol: 'tcp', nodePort: 0 });
    expect(listed.serviceCount).toBe(20_000);
    const past = await pg.load({ source: { preset: preset.id, edits: [svc(19_000, 82)] }, mode: 'iptables', scheduler: 'rr', fresh: false });
    expect(past.services![3]!.port).toBe(80);
    expect(past.services!.some((e) => e.port !== 80)).toBe(false);
    expect(past.serviceCount).toBe(20_000);
    const added = { ...svc(20_000, 83, '10.96.250.250'), metadata: { name: 'svc-new', namespace: 'default' } };
    const grown = await pg.load({ source: { preset: preset.id, edits: [added, svc(19_000, 82)] }, mode: 'iptables', scheduler: 'rr', fresh: false });
    expect(grown.serviceCount).toBe(20_001);
    expect(grown.services).toEqual(past.services);
    // An edit that leaves the list as the last load returned it does not send it again.
    const slice = { ...edit(5, '10.250.0.5'), metadata: { name: 'svc-5-abc12', namespace: 'default', labels: { 'kubernetes.io/service-name': 'svc-5' } } };
    const again = await pg.load({ source: { preset: preset.id, edits: [added, svc(19_000, 82), slice] }, mode: 'iptables', scheduler: 'rr', fresh: false });
    expect(again.change.changedServices).toEqual(['default/svc-5']);
    expect(again.services).toBeUndefined();
    expect(again.serviceCount).toBe(20_001);
    const named = pg.packet({ src: '10.244.1.5', dst: '', name: 'svc-new.default.svc.cluster.local', proto: 'tcp', sport: 40001, dport: 83, local: false }, 0, false);
    expect(named.dns?.address).toBe('10.96.250.250');
    expect(pg.packet({ ...p(19_000), dport: 82 }, 0, false).trace.outcomes.map((o) => o.to).sort()).toHaveLength(2);
    expect(pg.packet(p(19_000), 0, false).trace.outcomes.every((o) => o.to === undefined)).toBe(true);   // port 80 is gone
  }, 240_000);
});

describe('edits of a generated scene as a shared link may carry them', () => {
  it('a Service whose ports are no list of objects is named by apply(), never thrown while listing the builder', async () => {
    const tiny = { ...presetById('scale-20k')!, id: 'tiny', generate: () => scaleObjects(20), size: 20, shown: 0 };
    const pg = new Playground((id) => (id === 'tiny' ? tiny : undefined));
    const bad = (ports: unknown, clusterIP: unknown = scaleVip(1)) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc-1', namespace: 'default' }, spec: { type: 'ClusterIP', clusterIP, ports } });
    for (const ports of [[null], 0, {}, true, [3, { name: 'p', port: '80', protocol: 6 }]]) {
      const r = await pg.load({ source: { preset: 'tiny', edits: [bad(ports)] }, mode: 'iptables', scheduler: 'rr', fresh: true });
      expect(r.issues.some((i) => i.object === 'Service default/svc-1'), JSON.stringify(ports)).toBe(true);
      expect(r.serviceCount).toBe(20);
    }
    const ok = await pg.load({ source: { preset: 'tiny', edits: [bad([{ name: 'http', port: 81, protocol: 'TCP' }])] }, mode: 'iptables', scheduler: 'rr', fresh: false });
    expect(ok.issues).toEqual([]);
    expect(ok.services!.find((e) => e.id === 'default/svc-1:http')).toMatchObject({ port: 81, protocol: 'tcp' });
  });
});
