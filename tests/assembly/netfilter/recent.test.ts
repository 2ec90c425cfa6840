// xt_recent: kube-proxy's session affinity (--set in KUBE-SEP, --rcheck --seconds --reap in
// KUBE-SVC), expiry, reaping, the 100-address list with LRU eviction, --hitcount with --update,
// --rttl, --rdest, --mask, --remove, and a table living as long as a rule names it.
import { describe, it, expect } from 'vitest';
import { Bench, filterWith, udp, V } from './harness';

const SEC = 1000;
const u = (src: string, port: number) => udp(src, '198.18.0.2', 9, port);

function affinity(extra = ''): Bench {
  const b = new Bench();
  b.restore(filterWith(
    '-A TEST -p udp --dport 1 -m recent --name KUBE-SEP-A --set -j ACCEPT\n' +
    '-A TEST -p udp --dport 2 -m recent --name KUBE-SEP-A --rcheck --seconds 10 --reap -j DROP\n' + extra));
  return b;
}

const count = (b: Bench, name: string) => b.x.iptRecentCount!(b.compiler.recentId(name)!) >>> 0;

describe('recent', () => {
  it('--set then --rcheck --seconds: a hit within the window, none after it', () => {
    const b = affinity();
    expect(b.send(u('198.18.1.1', 2), { now: 1 * SEC }).verdict).toBe(V.PASS);
    b.send(u('198.18.1.1', 1), { now: 2 * SEC });
    expect(count(b, 'KUBE-SEP-A')).toBe(1);
    expect(b.send(u('198.18.1.1', 2), { now: 5 * SEC }).verdict).toBe(V.DROP);
    expect(b.send(u('198.18.1.1', 2), { now: 12 * SEC }).verdict).toBe(V.DROP);
    expect(b.send(u('198.18.1.2', 2), { now: 5 * SEC }).verdict).toBe(V.PASS);
    expect(b.send(u('198.18.1.1', 2), { now: 12 * SEC + 1 }).verdict).toBe(V.PASS);
  });

  it('--reap drops the oldest entry once it is older than --seconds', () => {
    const b = affinity();
    b.send(u('198.18.1.1', 1), { now: 1 * SEC });
    b.send(u('198.18.1.2', 1), { now: 30 * SEC });
    expect(count(b, 'KUBE-SEP-A')).toBe(2);
    // A check by a third address at 35 s: the oldest (1 s) is older than 10 s and goes.
    b.send(u('198.18.1.2', 2), { now: 35 * SEC });
    expect(count(b, 'KUBE-SEP-A')).toBe(1);
  });

  it('keeps 100 addresses, evicting the least recently updated', () => {
    const b = affinity();
    for (let i = 0; i < 100; i++) b.send(u(`198.18.3.${i}`, 1), { now: SEC + i });
    b.send(u('198.18.3.0', 1), { now: 2 * SEC });          // refresh the first one
    b.send(u('198.18.4.1', 1), { now: 2 * SEC + 1 });      // the 101st: evicts 198.18.3.1
    expect(count(b, 'KUBE-SEP-A')).toBe(100);
    expect(b.send(u('198.18.3.0', 2), { now: 3 * SEC }).verdict).toBe(V.DROP);
    expect(b.send(u('198.18.3.1', 2), { now: 3 * SEC }).verdict).toBe(V.PASS);
    expect(b.send(u('198.18.3.2', 2), { now: 3 * SEC }).verdict).toBe(V.DROP);
  });

  it('--update --hitcount counts packets in the window and refreshes only on a hit', () => {
    const b = new Bench();
    b.restore(filterWith('-A TEST -p udp --dport 1 -m recent --name H --set\n' +
      '-A TEST -p udp --dport 1 -m recent --name H --update --seconds 60 --hitcount 3 -j DROP'));
    const v = (now: number) => b.send(u('198.18.1.1', 1), { now }).verdict;
    // Each packet is stamped by --set first; --update sees 1, 2, 3 stamps.
    expect(v(1 * SEC)).toBe(V.PASS);
    expect(v(2 * SEC)).toBe(V.PASS);
    expect(v(3 * SEC)).toBe(V.DROP);
    // 61 s later only the newest stamps are in the window again.
    expect(v(64 * SEC)).toBe(V.PASS);
  });

  it('--rdest, --mask and --remove', () => {
    const b = new Bench();
    b.restore(filterWith('-A TEST -p udp --dport 1 -m recent --name D --rdest --mask 255.255.255.0 --set\n' +
      '-A TEST -p udp --dport 2 -m recent --name D --rdest --rcheck -j DROP\n' +
      '-A TEST -p udp --dport 3 -m recent --name D --rdest --remove'));
    b.send(udp('198.18.1.1', '198.18.7.9', 9, 1));
    expect(b.send(udp('198.18.2.2', '198.18.7.200', 9, 2)).verdict).toBe(V.DROP);
    expect(b.send(udp('198.18.2.2', '198.18.8.1', 9, 2)).verdict).toBe(V.PASS);
    b.send(udp('198.18.2.2', '198.18.7.1', 9, 3));
    expect(b.send(udp('198.18.2.2', '198.18.7.200', 9, 2)).verdict).toBe(V.PASS);
  });

  it('--rttl requires the TTL recorded by --set', () => {
    const b = new Bench();
    b.restore(filterWith('-A TEST -p udp --dport 1 -m recent --name T --set\n' +
      '-A TEST -p udp --dport 2 -m recent --name T --rcheck --rttl -j DROP'));
    b.send(u('198.18.1.1', 1));
    expect(b.send(udp('198.18.1.1', '198.18.0.2', 9, 2, { ttl: 64 })).verdict).toBe(V.DROP);
    expect(b.send(udp('198.18.1.1', '198.18.0.2', 9, 2, { ttl: 63 })).verdict).toBe(V.PASS);
  });

  it('a list lives while a rule names it: dropping the rules empties it', () => {
    const b = affinity();
    b.send(u('198.18.1.1', 1));
    const id = b.compiler.recentId('KUBE-SEP-A')!;
    expect(b.x.recentExists!(id)).toBe(1);
    // Replacing the chain with the same rules keeps the list (and its addresses).
    b.restore(filterWith('-A TEST -p udp --dport 2 -m recent --name KUBE-SEP-A --rcheck --seconds 10 --reap -j DROP'));
    expect(b.x.iptRecentCount!(id)).toBe(1);
    b.restore(filterWith('-A TEST -j ACCEPT'));
    expect(b.x.recentExists!(id)).toBe(0);
    expect(b.compiler.recentId('KUBE-SEP-A')).toBeUndefined();
  });
});
