// The typed programming layer over the shipped core: apply() as a partial sync (unchanged services
// and destinations keep their ids, entries and counters), listing, and the IPVS batch entry of the ABI.
import { describe, it, expect } from 'vitest';
import { instantiateCore } from '../../../host-node/core/loader';
import { IpvsProgram, type IpvsCore, type DesiredService } from '../../../host-node/ipvs/program';
import { buildPacket, decodePacket } from '../../../host-node/core/packet';

async function core() {
  const x = (await instantiateCore()) as unknown as IpvsCore & Record<string, (...a: number[]) => number>;
  expect(x.init(10, 8, 3, 4)).toBe(0);
  const p = new IpvsProgram(x);
  p.init({ connLog2: 10, services: 64, destinations: 256, seed: 9 });
  return { x, p };
}

/** Runs packets through ipvsProcessBatch in the I/O arena. */
function batch(x: Record<string, (...a: number[]) => number> & { memory: WebAssembly.Memory }, pkts: Uint8Array[], now: number) {
  const desc = x.ioDescPtr(), data = x.ioDataPtr(), slot = 2048;
  const u8 = new Uint8Array(x.memory.buffer), dv = new DataView(x.memory.buffer);
  pkts.forEach((p, i) => {
    u8.set(p, data + i * slot);
    const d = desc + 32 * i;
    dv.setUint32(d, i * slot, true); dv.setUint32(d + 4, p.length, true); dv.setUint32(d + 8, slot, true);
    dv.setUint32(d + 12, 0, true); dv.setUint32(d + 20, 0, true);
  });
  expect(x.ipvsProcessBatch(pkts.length, now)).toBe(pkts.length);
  const res = x.ipvsResultPtr();
  return pkts.map((_, i) => {
    const d = desc + 32 * i;
    const len = dv.getUint32(d + 4, true);
    return { verdict: dv.getUint8(d + 16), dest: dv.getUint32(d + 28, true), fwd: dv.getUint8(res + 32 * i),
      pkt: decodePacket(new Uint8Array(x.memory.buffer).slice(data + i * slot, data + i * slot + len)) };
  });
}

const desired = (weightB = 1): DesiredService[] => [
  { protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr', destinations: [
    { address: '198.18.1.1', port: 8080, forwarding: 'masq' }, { address: '198.18.1.2', port: 8080, forwarding: 'masq', weight: weightB }] },
  { protocol: 'udp', address: '198.18.0.100', port: 53, destinations: [{ address: '198.18.1.3', port: 53 }] },
];

describe('IpvsProgram over the shipped core', () => {
  it('apply adds, then does nothing for the same state, edits and deletes only what changed', async () => {
    const { p } = await core();
    expect(p.apply(desired())).toEqual({ added: 5, edited: 0, deleted: 0 });
    const ids = p.services().flatMap((s) => s.destinations.map((d) => d.id));
    expect(p.apply(desired())).toEqual({ added: 0, edited: 0, deleted: 0 });
    expect(p.apply(desired(4))).toEqual({ added: 0, edited: 1, deleted: 0 });
    expect(p.services().flatMap((s) => s.destinations.map((d) => d.id))).toEqual(ids);
    expect(p.services()[0]!.destinations.map((d) => [d.address, d.weight])).toEqual([['198.18.1.2', 4], ['198.18.1.1', 1]]);
    const fewer = desired(4);
    fewer[0]!.destinations.pop();
    fewer.pop();
    fewer[0]!.scheduler = 'wlc';
    expect(p.apply(fewer)).toEqual({ added: 0, edited: 1, deleted: 2 });
    expect(p.services().map((s) => [s.scheduler, s.destinations.length])).toEqual([['wlc', 1]]);
  });

  it('apply for one family reads, keeps and deletes only that family\'s services (cleanLegacyService: "Not our family")', async () => {
    const { p } = await core();
    const v6: DesiredService = { protocol: 'tcp', address: 'fd00:96::80', port: 80, scheduler: 'rr', destinations: [{ address: 'fd00:244::11', port: 8080, forwarding: 'masq' }] };
    expect(p.apply([...desired(), v6])).toEqual({ added: 7, edited: 0, deleted: 0 });
    expect(p.services(6).map((s) => s.address)).toEqual(['fd00:96::80']);
    expect(p.services(4).map((s) => s.address)).toEqual(['198.18.0.100', '198.18.0.100']);
    // The IPv4 sync wants one service: the other IPv4 one goes, the IPv6 one is not its business.
    expect(p.apply(desired().slice(0, 1), 4)).toEqual({ added: 0, edited: 0, deleted: 1 });
    expect(p.services().map((s) => `${s.protocol} ${s.address}`)).toEqual(['tcp 198.18.0.100', 'tcp fd00:96::80']);
    expect(p.apply([], 6)).toEqual({ added: 0, edited: 0, deleted: 1 });
    expect(p.services().map((s) => s.address)).toEqual(['198.18.0.100']);
  });

  it('applyChanges makes the calls apply would for the services given, and leaves every other one alone', async () => {
    const vs = (n: number, dests: number[], more: Partial<DesiredService> = {}): DesiredService => ({
      protocol: 'tcp', address: `198.18.0.${n}`, port: 80, scheduler: 'rr', ...more,
      destinations: dests.map((d) => ({ address: `198.18.1.${d}`, port: 8080, forwarding: 'masq' as const })),
    });
    const first = [vs(1, [1, 2]), vs(2, [3]), vs(3, [4, 5]), vs(4, [6])];
    const target = [vs(1, [1, 2]), vs(2, [3, 7, 8], { scheduler: 'wlc', persistent: 60 }), vs(3, [5]), vs(5, [9, 10])];
    const a = (await core()).p, b = (await core()).p;
    a.apply(first); b.apply(first);
    const untouched = a.services()[0]!;
    // vs 2 changes, vs 3 loses a destination, vs 4 goes, vs 5 is new; vs 1 is not named.
    const expected = b.apply(target);
    expect(a.applyChanges(target.slice(1), [first[3]!, { protocol: 'tcp', address: '198.18.0.77', port: 80 }])).toEqual(expected);
    expect(expected).toEqual({ added: 5, edited: 1, deleted: 2 });
    const view = (p: IpvsProgram) => p.services().map((s) => [s.address, s.scheduler, s.persistent, s.destinations.map((d) => [d.address, d.weight])]);
    expect(view(a)).toEqual(view(b));
    expect(a.services()[0]).toEqual(untouched);
    // A service both removed and given stays (brought to what is given).
    expect(a.applyChanges([vs(5, [9])], [vs(5, [])])).toEqual({ added: 0, edited: 0, deleted: 1 });
    expect(a.services().find((s) => s.address === '198.18.0.5')!.destinations.map((d) => d.address)).toEqual(['198.18.1.9']);
  });

  it('the IPVS batch entry schedules, masquerades and reports the destination in the descriptor', async () => {
    const { x, p } = await core();
    p.apply(desired());
    const syns = [1, 2, 3].map((i) => buildPacket({ src: `198.18.7.${i}`, dst: '198.18.0.100', proto: 'tcp', sport: 1000, dport: 80, flags: 'S' }));
    const out = batch(x, [...syns, buildPacket({ src: '198.18.7.1', dst: '198.18.0.101', proto: 'tcp', sport: 1, dport: 80, flags: 'S' })], 0);
    expect(out.slice(0, 3).map((o) => [o.verdict, o.fwd, o.pkt.dst, o.pkt.dport, o.pkt.checksumsOk])).toEqual([
      [1, 0, '198.18.1.2', 8080, true], [1, 0, '198.18.1.1', 8080, true], [1, 0, '198.18.1.2', 8080, true]]);
    expect(out[3]!.verdict).toBe(0);
    expect(out[3]!.dest).toBe(0xffffffff);
    expect(p.connections(0).map((c) => [c.client, c.state, c.destination])).toEqual(expect.arrayContaining([
      ['198.18.7.1', 'SYN_RECV', '198.18.1.2'], ['198.18.7.2', 'SYN_RECV', '198.18.1.1']]));
    expect(p.counters()).toMatchObject({ packets: 3n, conn_new: 3n });
  });
});
