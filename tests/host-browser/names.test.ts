// Service DNS names as the packet builder's destination: the names a pod's resolver asks (search
// path, ndots), resolution through the core's records of the loaded objects, and the trace from
// the name to the VIP to the endpoints — in every mode, for short and full names, SRV names, and
// names that do not resolve.
import { describe, it, expect } from 'vitest';
import { candidateNames, podSearchPath, searchFor } from '../../host-browser/src/engine/names.js';
import { Playground } from '../../host-browser/src/engine/playground.js';
import { presetById } from '../../host-browser/src/presets.js';
import type { WirePacket } from '../../host-browser/src/engine/outcomes.js';

const POD = { src: '10.244.1.5', proto: 'tcp', sport: 40000, dport: 80, local: false, dst: '' } as const;
const named = (name: string, from: 'pod' | 'node' | 'outside' = 'pod'): WirePacket => ({ ...POD, name, search: searchFor(from) });

async function scene(id = 'clusterip', mode: 'iptables' | 'ipvs' | 'direct' = 'iptables'): Promise<Playground> {
  const pg = new Playground();
  await pg.load({ source: { preset: id }, mode, scheduler: 'rr', fresh: true });
  return pg;
}

describe('destination names', () => {
  it('asks the names a pod\'s resolv.conf gives, in resolver order', () => {
    const search = podSearchPath('shop');
    expect(search).toEqual(['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
    expect(candidateNames('web', search)).toEqual(['web.shop.svc.cluster.local', 'web.svc.cluster.local', 'web.cluster.local', 'web']);
    // Four dots is still fewer than ndots:5: the search list first.
    expect(candidateNames('web.default.svc.cluster.local', search)[0]).toBe('web.default.svc.cluster.local.shop.svc.cluster.local');
    expect(candidateNames('web.default.svc.cluster.local', search).at(-1)).toBe('web.default.svc.cluster.local');
    expect(candidateNames('a.b.c.d.e.f', search)[0]).toBe('a.b.c.d.e.f');
    expect(candidateNames('Web.Default.svc.cluster.local.', search)).toEqual(['web.default.svc.cluster.local']);
    expect(candidateNames('web', [])).toEqual(['web']);
  });

  it('traces name → VIP → endpoints, for the short name, namespace.svc form and the full name', async () => {
    const pg = await scene();
    const byVip = pg.packet({ ...POD, dst: '10.96.0.80' }, 0, false).trace.outcomes.map((o) => o.key);
    for (const [name, tried] of [['web', 1], ['web.default', 2], ['web.default.svc', 3], ['web.default.svc.cluster.local', 4], ['web.default.svc.cluster.local.', 1]] as const) {
      const r = pg.packet(named(name), 0, false);
      expect(r.dns!.address, name).toBe('10.96.0.80');
      expect(r.dns!.asked, name).toHaveLength(tried);
      expect(r.dns!.asked.slice(0, -1).every((a) => a.rcode === 'NXDOMAIN'), name).toBe(true);
      expect(r.dns!.asked.at(-1)!.name).toBe('web.default.svc.cluster.local');
      expect(r.trace.outcomes.map((o) => o.key), name).toEqual(byVip);
      expect(r.trace.steps[tried - 1]).toMatchObject({ matched: true, target: '10.96.0.80:80' });
      expect(r.trace.steps[tried]!.where).toContain('PREROUTING');   // then the packet's own trace
    }
  });

  it('a client without the search path needs the full name; an unknown name says NXDOMAIN and sends nothing', async () => {
    const pg = await scene();
    const short = pg.packet(named('web', 'outside'), 0, false);
    expect(short.dns!.address).toBeUndefined();
    expect(short.trace.outcomes).toEqual([expect.objectContaining({ probability: 1, reason: 'dns' })]);
    expect(pg.packet(named('web.default.svc.cluster.local', 'node'), 0, false).dns!.address).toBe('10.96.0.80');
    const ghost = pg.packet(named('nope'), 0, false);
    expect(ghost.dns!.asked.map((a) => a.rcode)).toEqual(['NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN', expect.any(String)]);
    expect(ghost.trace.outcomes[0]!.key).toMatch(/^no address/);
    expect(() => pg.send(named('nope'), 10, 0)).toThrow(/nope does not resolve/);
  });

  it('an SRV name gives the port; sending to a name sends to its VIP; edits reach the records', async () => {
    const pg = await scene();
    const srv = pg.packet({ ...named('_http._tcp.web.default.svc.cluster.local.'), dport: 1 }, 0, false);
    expect(srv.dns).toMatchObject({ address: '10.96.0.80', port: 80 });
    expect(srv.trace.outcomes).toHaveLength(3);
    const sent = pg.send(named('web'), 300, 0).measured;
    expect(sent.sent).toBe(300);
    expect(sent.counts.map((c) => c.key).sort()).toEqual(['FORWARD → 10.244.1.11:8080', 'FORWARD → 10.244.1.13:8080', 'FORWARD → 10.244.2.12:8080']);
    // A renamed Service: the old name is gone, the new one resolves.
    const yaml = presetById('clusterip')!.yaml!.replace('name: web\n', 'name: www\n').replace('kubernetes.io/service-name: web', 'kubernetes.io/service-name: www');
    await pg.load({ source: { yaml }, mode: 'iptables', scheduler: 'rr', fresh: false });
    expect(pg.packet(named('web'), 0, false).dns!.address).toBeUndefined();
    expect(pg.packet(named('www'), 0, false).trace.outcomes).toHaveLength(3);
  });

  it('names work in the ipvs and direct modes and in compare', async () => {
    for (const mode of ['ipvs', 'direct'] as const) {
      const pg = await scene('clusterip', mode);
      const r = pg.packet(named('web'), 0, false);
      expect(r.dns!.address, mode).toBe('10.96.0.80');
      expect((r.trace.longRun ?? r.trace.outcomes).map((o) => o.to).sort(), mode).toEqual(['10.244.1.11:8080', '10.244.1.13:8080', '10.244.2.12:8080']);
    }
    const pg = await scene();
    const cols = await pg.compare(named('web'), 0, [{ mode: 'iptables', scheduler: 'rr' }, { mode: 'direct', scheduler: 'rr' }], 90);
    expect(cols.map((c) => c.measured.sent)).toEqual([90, 90]);
    expect(cols[1]!.outcomes.map((o) => o.key).sort()).toEqual(cols[0]!.outcomes.map((o) => o.key).sort());
  });
});
