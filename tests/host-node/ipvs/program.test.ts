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
