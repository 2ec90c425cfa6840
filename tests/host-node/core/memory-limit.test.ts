// The core at the end of its memory: a wasm32 memory stops at 65,536 pages (4 GiB), and the
// allocator cannot refuse a block — it traps. Here the memory is grown to its last pages first
// (address space only: nothing is written to it), so every configuration that needs fresh pages
// meets the limit at once. Each refusal must name it, change nothing and leave the dataplane
// usable: the iptables rules still DNAT, the next restore runs (before, a trap in the middle of a
// restore left the compiler waiting for an answer and every later restore refused), a direct
// table load is refused before the old table is cleared, and a larger conntrack event ring is
// refused while recording goes on in the old one (before, the old ring was given back first and
// events went on being written into freed memory).
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';

const VIP = '198.18.96.10';
const POD = '198.18.100.2';

/** Grows the core's memory to its last `left` pages (they stay untouched: no resident memory). */
function fillMemory(dp: Dataplane, left: number): void {
  const m = dp.core.memory;
  const pages = m.buffer.byteLength / 65536;
  if (65536 - pages - left > 0) m.grow(65536 - pages - left);
}

const syn = (sport: number, dst = VIP) => buildPacket({ src: '198.18.50.1', dst, proto: 'tcp', sport, dport: 80, flags: 'S' });

function rules(extra: number): string {
  const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':BIG - [0:0]', `-A PREROUTING -d ${VIP} -p tcp --dport 80 -j DNAT --to-destination ${POD}:8080`];
  for (let i = 0; i < extra; i++) lines.push(`-A BIG -d 198.19.${i >> 8}.${i & 255} -p tcp --dport ${1 + (i % 60000)} -j DNAT --to-destination ${POD}:8080`);
  return [...lines, 'COMMIT', ''].join('\n');
}

describe('the core at the end of its memory', () => {
  it('iptables: a restore the memory cannot hold is refused by name; the old rules stay and the next restore runs', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], seed: 1 });
    dp.iptablesRestore(rules(0));
    fillMemory(dp, 8);
    expect(() => dp.iptablesRestore(rules(60_000))).toThrow(/iptables-restore: .*out of memory/);
    const out = dp.process(syn(1000), 1000);
    expect(out.verdict).toBe('FORWARD');
    expect(decodePacket(out.packet!).dst).toBe(POD);
    // Not wedged: a restore that fits in the memory already held goes through.
    dp.iptablesRestore(rules(0).replace(`${POD}:8080`, `${POD}:9090`));
    expect(decodePacket(dp.process(syn(1001), 1001).packet!).dport).toBe(9090);
  });

  it('direct: a service table the memory cannot hold is refused before the old one is cleared', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], seed: 1 });
    dp.setServices([{ name: 'web', vip: VIP, port: 80, endpoints: [`${POD}:8080`] }]);
    fillMemory(dp, 8);
    const many = Array.from({ length: 30_000 }, (_, i) => ({ name: `s${i}`, vip: `198.19.${i >> 8 & 255}.${i & 255}`, port: 1 + (i >> 16), endpoints: [`${POD}:8080`, `198.18.100.3:8080`] }));
    expect(() => dp.setServices(many)).toThrow(/out of memory/);
    const out = dp.process(syn(2000), 2000);
    expect(out.verdict).toBe('FORWARD');
    expect(decodePacket(out.packet!).dst).toBe(POD);
    expect(dp.core.serviceCount()).toBe(1);
  });

  it('conntrack events: a larger ring is refused and recording goes on in the old one', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], seed: 1 });
    dp.setServices([{ name: 'web', vip: VIP, port: 80, endpoints: [`${POD}:8080`] }]);
    dp.conntrackEvents(16);
    fillMemory(dp, 8);
    expect(() => dp.conntrackEvents(65536)).toThrow(/no room for a ring of 65536 events/);
    for (let i = 0; i < 8; i++) expect(dp.process(syn(3000 + i), 3000).verdict).toBe('FORWARD');
    const taken = dp.conntrackEventsTake(3000);
    expect(taken.events.filter((e) => e.kind === 'NEW').map((e) => e.flow.original.sport).sort()).toEqual([3000, 3001, 3002, 3003, 3004, 3005, 3006, 3007]);
    // Memory the old ring lent nobody: a restore allocating after it still answers right.
    dp.iptablesRestore(rules(0));
    expect(decodePacket(dp.process(syn(3100), 3100).packet!).dst).toBe(POD);
  });
});
