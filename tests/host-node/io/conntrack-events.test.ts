// The proxy's conntrack -E feed (io/conntrack-events.ts) on its own: each listener its selection,
// as conntrack -E prints it; the core recording only while someone listens; events the core
// could not hold, and lines a listener did not read in time, said in conntrack's warning; a
// fault while taking ends the streams with a warning, never the proxy.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket } from '../../../host-node/core/packet.js';
import { ConntrackEventFeed, EVENT_SLOTS, LISTENER_BACKLOG, LOSING_EVENTS } from '../../../host-node/io/conntrack-events.js';

const VIP = '198.18.96.10';
const EP = '198.18.100.2';

async function node(): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], seed: 1, conntrackCapacity: 1 << 18 });
  dp.setServices([{ vip: VIP, port: 80, protocol: 'TCP', endpoints: [`${EP}:8080`] }, { vip: VIP, port: 53, protocol: 'UDP', endpoints: [`${EP}:53`] }]);
  return dp;
}

/** `n` new connections (TCP to port 80, or UDP to 53), from distinct client ports. */
function connect(dp: Dataplane, n: number, proto: 'tcp' | 'udp', from = 0, nowMs = 1000): void {
  for (let i = 0; i < n; i += 256) {
    dp.processBatch(Array.from({ length: Math.min(256, n - i) }, (_, k) => buildPacket({
      src: `198.18.${50 + ((from + i + k) >> 16)}.${((from + i + k) >> 8) & 255}`, dst: VIP, proto,
      sport: 1024 + ((from + i + k) & 255), dport: proto === 'tcp' ? 80 : 53, ...(proto === 'tcp' ? { flags: 'S' } : {}),
    })), nowMs);
  }
}

/** The next chunk of `it`, or null when it has none within a moment. */
async function nextChunk(it: AsyncIterator<string>): Promise<IteratorResult<string> | null> {
  return Promise.race([it.next(), new Promise<null>((ok) => setTimeout(() => ok(null), 100))]);
}

describe('ConntrackEventFeed', () => {
  it('each listener gets its selection; the core records only while someone listens', async () => {
    const dp = await node();
    const feed = new ConntrackEventFeed(dp, () => 1000, 3_600_000);
    const udp = feed.listen({ proto: 'udp' });
    const all = feed.listen({});
    expect(feed.size).toBe(2);
    connect(dp, 1, 'tcp');
    connect(dp, 1, 'udp');
    feed.take();
    const u = await udp.next();
    expect(u.value).toBe(`    [NEW] udp      17 30 src=198.18.50.0 dst=${VIP} sport=1024 dport=53 [UNREPLIED] src=${EP} dst=198.18.50.0 sport=53 dport=1024\n`);
    expect(((await all.next()).value as string).split('\n').filter(Boolean).map((l) => l.split(/ +/)[2])).toEqual(['tcp', 'udp']);
    // Nothing more: the listeners wait.
    expect(await nextChunk(udp)).toBeNull();
    await udp.return!();
    expect(feed.size).toBe(1);
    await all.return!();
    expect(feed.size).toBe(0);
    // Nobody listens: the core records nothing.
    connect(dp, 1, 'tcp', 10);
    expect(dp.conntrackEventsTake(1000).events).toEqual([]);
  });

  it('what the core could not hold, and what a listener did not read in time, said as conntrack says it', async () => {
    const dp = await node();
    const feed = new ConntrackEventFeed(dp, () => 1000, 3_600_000);
    const slow = feed.listen({});
    connect(dp, EVENT_SLOTS + 100, 'tcp');
    feed.take();
    const first = (await slow.next()).value as string;
    expect(first.startsWith(`${LOSING_EVENTS} (100 the proxy's core could not hold)\n`)).toBe(true);
    expect(first.split('\n').filter((l) => l.includes('[NEW]'))).toHaveLength(EVENT_SLOTS);
    // Five takes unread: past the backlog, the oldest go, said once at the front.
    for (let r = 0; r < 5; r++) {
      connect(dp, EVENT_SLOTS - 1, 'udp', 100_000 + r * EVENT_SLOTS);
      feed.take();
    }
    const lines = ((await slow.next()).value as string).split('\n').filter(Boolean);
    const over = 5 * (EVENT_SLOTS - 1) - LISTENER_BACKLOG;
    expect(lines[0]).toBe(`${LOSING_EVENTS} (${over} not read in time)`);
    expect(lines).toHaveLength(LISTENER_BACKLOG + 1);
    await slow.return!();
  });

  it('a fault while taking ends the streams with a warning, and the feed stops recording', async () => {
    const dp = await node();
    let clock = 1000;
    const feed = new ConntrackEventFeed(dp, () => clock, 10);
    const l = feed.listen({});
    connect(dp, 1, 'tcp');
    clock = Number.NaN;   // a clock no call takes
    const r = await l.next();
    expect(r.value).toMatch(/^WARNING: events stopped: conntrackEventsTake: bad nowMs NaN/);
    expect(await l.next()).toEqual({ value: undefined, done: true });
    expect(feed.size).toBe(0);
    connect(dp, 1, 'tcp', 20);
    expect(dp.conntrackEventsTake(1000).events).toEqual([]);
  });

  it('close() ends every stream; a listener after it gets nothing', async () => {
    const dp = await node();
    const feed = new ConntrackEventFeed(dp, () => 1000, 3_600_000);
    const l = feed.listen({});
    const pending = l.next();
    feed.close();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(await feed.listen({}).next()).toEqual({ value: undefined, done: true });
    expect(feed.size).toBe(0);
  });
});
