// ClientIP session affinity across a restart of the proxy: under kube-proxy's iptables mode the
// `recent` lists are the kernel's and outlive kube-proxy, so a client keeps its endpoint until its
// timeout; svcplane keeps them, and the direct table's stamps, in the conntrack snapshot (format
// version 4). The snapshot is loaded before the first sync (as `svcplane proxy` does) or after it;
// version-2 files still load.
import { describe, it, expect } from 'vitest';
import { Packr } from 'msgpackr';
import { Dataplane } from '../../../host-node/dataplane.js';
import { AFFINITY_OBJECTS, AFFINITY_CLIENTS, connect, pick } from '../../support/affinity-cluster.js';
import { crc32, decodeSnapshot, savedAtBytes, SNAPSHOT_FORMAT, IPVS_RECORD_BYTES, RECENT_ENTRY_BYTES, DIRECT_AFFINITY_BYTES } from '../../../host-node/core/snapshot.js';
import { RECORD_BYTES } from '../../../host-node/core/conntrack-record.js';

const OBJECTS = AFFINITY_OBJECTS;
const CLIENTS = AFFINITY_CLIENTS;
const T0 = 100_000;

async function node(seed: number): Promise<Dataplane> {
  return Dataplane.create({ nodeIPs: ['198.18.0.2'], podCIDR: '198.19.0.0/16', seed });
}
type Mode = 'iptables' | 'direct';
const sync = (dp: Dataplane, mode: Mode) => expect(dp.apply(OBJECTS, { mode, nodeName: 'node-a' }).issues).toEqual([]);

/** A proxy that served the clients once, and the snapshot it left at T0 + 1 s. */
async function before(mode: Mode): Promise<{ chosen: string[]; snap: Uint8Array }> {
  const dp = await node(1);
  sync(dp, mode);
  const chosen = connect(dp, 40000, T0);
  return { chosen, snap: dp.snapshot(T0 + 1000) };
}

describe('ClientIP affinity across a restart', () => {
  for (const [mode, order] of [['iptables', 'before'], ['iptables', 'after'], ['direct', 'before'], ['direct', 'after']] as const) {
    it(`${mode} mode, the snapshot loaded ${order} the first sync: every client keeps its endpoint until its timeout`, async () => {
      const { chosen, snap } = await before(mode);
      // Other seeds than the first proxy's: without the lists the picks would differ.
      const again = async (seed: number) => {
        const dp = await node(seed);
        if (order === 'before') dp.restore(snap);
        sync(dp, mode);
        if (order === 'after') dp.restore(snap);
        return dp;
      };
      expect(connect(await again(2), 40001, T0 + 500_000)).toEqual(chosen);
      // Past the timeout (600 s since the client's last new connection) they are balanced afresh.
      const late = connect(await again(3), 40001, T0 + 601_000);
      expect(late.filter((ip, i) => ip !== chosen[i]).length).toBeGreaterThan(0);
    });
  }

  it('the snapshot holds the lists by name and the direct stamps by service port, stamped as ages; damage fails the checksum', async () => {
    const ipt = decodeSnapshot((await before('iptables')).snap).affinity;
    expect(ipt.direct).toEqual([]);
    expect(ipt.recent.every((l) => l.name.startsWith('KUBE-SEP-') && l.entries.every((e) => e.length === RECENT_ENTRY_BYTES))).toBe(true);
    expect(ipt.recent.reduce((n, l) => n + l.entries.length, 0)).toBe(CLIENTS.length);
    // Each list entry: IPv4, one stamp, 1 s old at the time of saving.
    for (const e of ipt.recent.flatMap((l) => l.entries)) {
      expect([e[0], e[2], e[3], new DataView(e.buffer, e.byteOffset, e.byteLength).getUint32(20, true)]).toEqual([4, 1, 1, 1000]);
    }
    const { snap } = await before('direct');
    const direct = decodeSnapshot(snap).affinity;
    expect(direct.recent).toEqual([]);
    expect(direct.direct.map((d) => [d.family, d.port, d.entries.length])).toEqual([[4, 'default/web:p/TCP', CLIENTS.length]]);
    // Each stamp: a client's address, its endpoint, 1 s old.
    const clients = direct.direct[0]!.entries.map((e) => {
      expect(e.length).toBe(DIRECT_AFFINITY_BYTES);
      expect(new DataView(e.buffer, e.byteOffset, e.byteLength).getUint32(40, true)).toBe(1000);
      return [...e.subarray(4, 8)].join('.');
    });
    expect(clients.sort()).toEqual([...CLIENTS].sort());
    const packr = new Packr({ useRecords: false });
    const spoilt = packr.unpack(snap) as { direct: { entries: Uint8Array }[] };
    spoilt.direct[0]!.entries[45]! ^= 1;
    const fresh = await node(2);
    expect(() => fresh.restore(packr.pack(spoilt))).toThrow(/checksum/);
  });

  for (const mode of ['iptables', 'direct'] as const) {
    it(`${mode} mode, two snapshots loaded before the first sync: the clients of both keep their endpoints`, async () => {
      // Two proxies, each having served half the clients.
      const halves = [CLIENTS.slice(0, 3), CLIENTS.slice(3)];
      const made = await Promise.all(halves.map(async (clients, i) => {
        const dp = await node(10 + i);
        sync(dp, mode);
        return { chosen: clients.map((c) => pick(dp, c, 40000, T0)), snap: dp.snapshot(T0 + 1000) };
      }));
      const dp = await node(20);
      for (const m of made) dp.restore(m.snap);
      sync(dp, mode);
      halves.forEach((clients, i) => expect(clients.map((c) => pick(dp, c, 40001, T0 + 300_000))).toEqual(made[i]!.chosen));
    });
  }

  it('a saved recent-list age past the range of the clock is a stamp from long ago, not one in the future', async () => {
    const { chosen, snap } = await before('iptables');
    const packr = new Packr({ useRecords: false });
    const o = packr.unpack(snap) as { recent: { entries: Uint8Array }[]; records: Uint8Array; ipvs: Uint8Array; direct: unknown[]; savedAtMs: number; crc: number };
    for (const l of o.recent) {
      const v = new DataView(l.entries.buffer, l.entries.byteOffset, l.entries.byteLength);
      for (let at = 0; at < l.entries.length; at += RECENT_ENTRY_BYTES) v.setUint32(at + 20, 0xf0000000, true);
    }
    const utf8 = new TextEncoder();
    o.crc = crc32([o.records, o.ipvs, ...o.recent.flatMap((l) => [utf8.encode((l as unknown as { name: string }).name), l.entries]), savedAtBytes(o.savedAtMs)]);
    const dp = await node(2);
    sync(dp, 'iptables');
    expect(dp.restore(new Uint8Array(packr.pack(o)))).toBeGreaterThan(CLIENTS.length);
    // Within the 600 s timeout of the first connections, but the stamps say long ago: balanced afresh.
    const again = connect(dp, 40001, T0 + 2000);
    expect(again.filter((ip, i) => ip !== chosen[i]).length).toBeGreaterThan(0);
  });

  it('still loads version-2 files, which have no affinity', async () => {
    const { snap } = await before('iptables');
    const s = decodeSnapshot(snap);
    const join = (rs: Uint8Array[], size: number) => {
      const all = new Uint8Array(rs.length * size);
      rs.forEach((r, i) => all.set(r, i * size));
      return all;
    };
    const all = join(s.records, RECORD_BYTES), conns = join(s.ipvs, IPVS_RECORD_BYTES);
    const v2 = new Packr({ useRecords: false }).pack({
      format: SNAPSHOT_FORMAT, version: 2, recordBytes: RECORD_BYTES, savedAtMs: T0 + 1000, count: s.records.length, records: all,
      ipvsRecordBytes: IPVS_RECORD_BYTES, ipvsCount: s.ipvs.length, ipvs: conns, crc: crc32([all, conns]),
    });
    const dp = await node(2);
    expect(dp.restore(v2)).toBe(CLIENTS.length);
    sync(dp, 'iptables');
    expect(dp.conntrack()).toHaveLength(CLIENTS.length);
  });
});
