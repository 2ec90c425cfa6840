// The core's wrapping millisecond clock (assembly/clock.ts) over weeks of proxy time: ClientIP
// affinity in both kube-proxy shapes (the iptables mode's `recent` lists, the direct table's
// stamps), and the tables whose entries expire (conntrack, IPVS, timed ipset elements) after a
// long silence. A client silent for longer than 24.8 days used to read as freshly stamped (u32 ms
// compared by sign) and went back to its old endpoint; after such a silence with no call at all an
// expired flow or set element read as live.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../host-node/dataplane.js';
import { AFFINITY_OBJECTS, AFFINITY_CLIENTS, connect, pick } from '../support/affinity-cluster.js';
import { Bench, filterWith, udp, V } from './netfilter/harness';
import { makeTable } from '../host-node/ipset/harness';

const DAY = 86_400_000;
const T0 = 100_000;

type Mode = 'iptables' | 'ipvs' | 'direct';

async function proxy(mode: Mode): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.0.2'], podCIDR: '198.19.0.0/16', seed: 7 });
  expect(dp.apply(AFFINITY_OBJECTS, { mode, nodeName: 'node-a' }).issues).toEqual([]);
  return dp;
}

const moved = (a: string[], b: string[]) => a.filter((ip, i) => ip !== b[i]).length;

describe('stamps across weeks of proxy time', () => {
  for (const mode of ['iptables', 'direct'] as const) {
    it(`${mode} mode: clients silent for 30 days are balanced afresh, not sent to their old endpoints`, async () => {
      const dp = await proxy(mode);
      const chosen = connect(dp, 40000, T0);
      expect(connect(dp, 40001, T0 + 500_000)).toEqual(chosen);
      // Nothing reaches the core for 30 days, then the clients come back.
      const late = connect(dp, 40002, T0 + 30 * DAY);
      expect(moved(late, chosen)).toBeGreaterThan(0);
      // Their new stamps hold as before.
      expect(connect(dp, 40003, T0 + 30 * DAY + 1000)).toEqual(late);
    });

    it(`${mode} mode: with the reaper ticking for 40 days, a client silent since day 0 is balanced afresh; one back every 5 minutes keeps its endpoint`, async () => {
      const dp = await proxy(mode);
      const chosen = connect(dp, 40000, T0);
      const regular = AFFINITY_CLIENTS[0]!;
      const STEP = 300_000;
      for (let k = 1; k <= (40 * DAY) / STEP; k++) {
        const now = T0 + k * STEP;
        dp.expire(now, 4096);
        if (pick(dp, regular, 1024 + (k % 60000), now) !== chosen[0]) throw new Error(`the regular client moved at ${k * STEP} ms`);
      }
      const late = connect(dp, 42000, T0 + 40 * DAY + 60_000);
      expect(late[0]).toBe(chosen[0]);
      expect(moved(late.slice(1), chosen.slice(1))).toBeGreaterThan(0);
    });
  }

  for (const mode of ['iptables', 'ipvs', 'direct'] as const) {
    it(`${mode} mode: the same connection again after 30 days with no call in between is a new flow, balanced afresh`, async () => {
      const dp = await proxy(mode);
      const chosen = connect(dp, 40000, T0);
      expect(dp.stats().conntrack_entries).toBe(AFFINITY_CLIENTS.length);
      // Their flows (SYN_SENT, 120 s) expired 30 days ago: not one of them may read as live.
      const late = connect(dp, 40000, T0 + 30 * DAY);
      expect(moved(late, chosen)).toBeGreaterThan(0);
      expect(dp.stats().conntrack_entries).toBe(AFFINITY_CLIENTS.length);
    });
  }

  it('a host clock that wraps at 2^32 ms is followed across its wrap: 30 days of hourly ticks later the silent clients are balanced afresh', async () => {
    const dp = await proxy('direct');
    // The host's u32 milliseconds wrap 10 days in.
    const start = 2 ** 32 - 10 * DAY;
    const chosen = connect(dp, 40000, start);
    for (let h = 1; h <= 30 * 24; h++) dp.expire((start + h * 3_600_000) >>> 0, 4096);
    const late = connect(dp, 40001, (start + 30 * DAY + 1000) >>> 0);
    expect(moved(late, chosen)).toBeGreaterThan(0);
    expect(connect(dp, 40002, (start + 30 * DAY + 2000) >>> 0)).toEqual(late);
  });
});

describe('recent --seconds over weeks', () => {
  const SEC = 1000;
  const u = (src: string, port: number) => udp(src, '198.18.0.2', 9, port);
  const bench = (seconds: number) => {
    const b = new Bench();
    b.restore(filterWith(
      '-A TEST -p udp --dport 1 -m recent --name W --set -j ACCEPT\n' +
      `-A TEST -p udp --dport 2 -m recent --name W --rcheck --seconds ${seconds} -j DROP\n`));
    return b;
  };

  it('a window of 10 s does not hold a stamp from 30 days ago', () => {
    const b = bench(10);
    b.send(u('198.18.1.1', 1), { now: SEC });
    expect(b.send(u('198.18.1.1', 2), { now: 5 * SEC }).verdict).toBe(V.DROP);
    expect(b.send(u('198.18.1.1', 2), { now: SEC + 30 * DAY }).verdict).toBe(V.PASS);
  });

  it('a window of 22 days holds a stamp 21 days old and not one 23 days old, with upkeeps on the way', () => {
    const b = bench(22 * 86_400);
    b.send(u('198.18.1.1', 1), { now: SEC });
    b.send(u('198.18.1.2', 1), { now: SEC + 2 * DAY });
    for (let d = 3; d <= 23; d++) b.send(u('198.18.9.9', 3), { now: SEC + d * DAY - 60_000 });
    expect(b.send(u('198.18.1.2', 2), { now: SEC + 23 * DAY }).verdict).toBe(V.DROP);
    expect(b.send(u('198.18.1.1', 2), { now: SEC + 23 * DAY }).verdict).toBe(V.PASS);
  });
});

describe('timed ipset elements over weeks', () => {
  it('an element with a 10 s timeout is gone 30 days later, with no call in between', () => {
    const { table, clock } = makeTable({ setId: () => 0 });
    table.command('create t hash:ip timeout 10');
    table.command('add t 198.18.5.5');
    expect(table.test('t', '198.18.5.5')).toBe(true);
    clock.now += 30 * DAY;
    expect(table.test('t', '198.18.5.5')).toBe(false);
    expect(table.list('t')).toContain('Number of entries: 0\n');
  });
});
