// Programming and listing: refused calls with their codes, pools, listing fields, counters and the
// rate estimator, zeroing and flushing.
import { describe, it, expect } from 'vitest';
import { Lab, V, tcp, udp } from './harness';
import { IpvsError } from '../../../host-node/ipvs/program';

const VIP = '198.18.0.100';

describe('refused calls', () => {
  it('each names the kernel\'s reason', () => {
    const lab = new Lab({ destinations: 2 });
    const svc = lab.p.addService({ protocol: 'tcp', address: VIP, port: 80 });
    const err = (f: () => void) => { try { f(); } catch (e) { return (e as IpvsError).code; } return 0; };
    expect(err(() => lab.p.addService({ protocol: 'tcp', address: VIP, port: 80 }))).toBe(-2);
    expect(err(() => lab.p.addService({ protocol: 'tcp', address: 'fd00::1', port: 80, netmask: 0, persistent: 1 }))).toBe(-1);
    expect(err(() => lab.p.addDest(svc, { address: '198.18.1.1', port: 80, weight: 65536 }))).toBe(-1);
    expect(err(() => lab.p.addDest(svc, { address: '198.18.1.1', port: 80, upperThreshold: 2, lowerThreshold: 3 }))).toBe(-1);
    expect(err(() => lab.p.addDest(svc, { address: 'fd00::1', port: 80, forwarding: 'masq' }))).toBe(-6);
    const d = lab.p.addDest(svc, { address: '198.18.1.1', port: 80 });
    expect(err(() => lab.p.addDest(svc, { address: '198.18.1.1', port: 80 }))).toBe(-2);
    lab.p.addDest(svc, { address: '198.18.1.2', port: 80 });
    expect(err(() => lab.p.editDest(svc + 1, d, { weight: 2 }))).toBe(-3);
    expect(err(() => lab.p.deleteService(svc + 5))).toBe(-3);
    expect(lab.x.ipvsInit!(10, 4, 4, 0)).toBe(-5);
    expect(err(() => lab.p.setTimeouts({ tcp: 3_000_000 }))).toBe(-1);
    expect(new IpvsError(-4, 'add destination').message).toBe('add destination: no room left (the pool is at its limit)');
  });
});

describe('listing', () => {
  it('services and destinations come back as programmed, destinations newest first', () => {
    const lab = new Lab();
    const svc = lab.p.addService({ protocol: 'udp', address: 'fd00::100', port: 53, scheduler: 'sh', schedFlags: ['sh-port'], persistent: 120, netmask: 64 });
    lab.p.addDest(svc, { address: 'fd00::1:1', port: 53, weight: 3, forwarding: 'masq' });
    lab.p.addDest(svc, { address: 'fd00::1:2', port: 53, upperThreshold: 9, lowerThreshold: 4, forwarding: 'tunnel' });
    const fw = lab.p.addService({ fwmark: 7, scheduler: 'mh', mhTableSize: 509 });
    const [s, f] = lab.p.services();
    expect(s).toMatchObject({ id: svc, family: 6, protocol: 'udp', address: 'fd00::100', port: 53, scheduler: 'sh', schedFlags: ['sh-port'], persistent: 120, netmask: 64 });
    expect(s!.destinations.map((d) => [d.address, d.weight, d.forwarding, d.upperThreshold, d.lowerThreshold])).toEqual([
      ['fd00::1:2', 1, 'tunnel', 9, 4], ['fd00::1:1', 3, 'masq', 0, 0]]);
    expect(f).toMatchObject({ id: fw, fwmark: 7, scheduler: 'mh', mhTableSize: 509, protocol: undefined });
    lab.p.editService(svc, { protocol: 'udp', address: 'fd00::100', port: 53, scheduler: 'rr' });
    expect(lab.p.service(svc)).toMatchObject({ scheduler: 'rr', persistent: undefined, schedFlags: [], netmask: 128 });
    lab.p.flush();
    expect(lab.p.services()).toEqual([]);
  });
});

describe('counters and rates', () => {
  it('counts per destination, service and in total; the estimator follows ip_vs_est.c', () => {
    const lab = new Lab();
    const { svc, ids: [d] } = lab.service({ protocol: 'udp', address: VIP, port: 53 }, [{ address: '198.18.1.1', port: 53 }]);
    lab.p.tick(0);                                           // arms the 2 s timer
    let bytes = 0;
    for (let i = 0; i < 10; i++) bytes += lab.send(udp('198.18.7.1', 1000 + i, VIP, 53, 20), { now: 100 }).bytes.length;
    const st = lab.p.stats(svc);
    expect(st).toMatchObject({ conns: 10n, inpkts: 10n, inbytes: BigInt(bytes), outpkts: 0n });
    expect(lab.p.destStats(d!)).toMatchObject({ conns: 10n, inpkts: 10n });
    expect(lab.p.stats('total')).toMatchObject({ conns: 10n, inpkts: 10n });
    lab.p.tick(2000);
    // rate = 10 << 9, ewma 0 + rate/4 = 1280 → (1280 + 0x1FF) >> 10 = 1 conn/s; bytes: (B<<4)/4 → (4B + 15) >> 5.
    const est = (n: number, shift: number, down: number, round: number) => BigInt(((n << shift) >> 2) + round >> down);
    expect(lab.p.stats(svc)).toMatchObject({ cps: est(10, 9, 10, 0x1ff), inpps: est(10, 9, 10, 0x1ff), inbps: est(bytes, 4, 5, 15) });
    lab.p.tick(4000);                                        // nothing new: 1280 − 320 = 960 → 1
    expect(lab.p.stats(svc).cps).toBe(BigInt((960 + 0x1ff) >> 10));
    lab.p.zero(svc);
    expect(lab.p.stats(svc)).toMatchObject({ conns: 0n, inpkts: 0n, cps: 0n });
    expect(lab.p.destStats(d!).conns).toBe(0n);
    expect(lab.p.stats('total').conns).toBe(10n);
    lab.p.zero();
    expect(lab.p.stats('total').conns).toBe(0n);
  });

  it('entries are 64 bytes; the table honours its capacity', () => {
    const lab = new Lab({ connLog2: 5 });
    expect(lab.x.ipvsConnEntryBytes!()).toBe(64);
    expect(lab.x.ipvsConnCapacity!()).toBe(32);
    lab.service({ protocol: 'tcp', address: VIP, port: 80 }, [{ address: '198.18.1.1', port: 80 }]);
    for (let i = 0; i < 20; i++) lab.send(tcp('198.18.7.1', 1000 + i, VIP, 80, 'S'));
    expect(lab.x.ipvsConnCount!()).toBe(20);
  });
});

describe('pools', () => {
  it('grow past their first size as services and destinations are added, ids, flows and counters kept', () => {
    // Room for 2 services and 2 destinations at first; 40 services of 3 destinations each later.
    const lab = new Lab({ services: 2, destinations: 2 });
    const vip = (i: number) => `198.18.0.${i + 1}`;
    const first = lab.service({ protocol: 'tcp', address: vip(0), port: 80 }, [{ address: '198.18.1.1', port: 80 }]);
    const syn = lab.send(tcp('198.18.7.1', 1000, vip(0), 80, 'S'));
    expect(syn.dest).toBe(first.ids[0]);
    const added = [first];
    for (let i = 1; i < 40; i++) {
      added.push(lab.service({ protocol: i % 2 ? 'udp' : 'tcp', address: vip(i), port: 80 }, [1, 2, 3].map((k) => ({ address: `198.18.${1 + i}.${k}`, port: 8080 }))));
    }
    lab.p.addService({ fwmark: 9 });
    const ids = added.flatMap((a) => [a.svc, ...a.ids]);
    expect(new Set(added.map((a) => a.svc)).size).toBe(40);
    expect(new Set(added.flatMap((a) => a.ids)).size).toBe(1 + 39 * 3);
    expect(Math.max(...ids)).toBeGreaterThan(2);
    // Every service is found by its address and goes to one of its own destinations.
    for (let i = 1; i < 40; i++) {
      const spec = i % 2 ? udp(`198.18.7.${i}`, 2000, vip(i), 80) : tcp(`198.18.7.${i}`, 2000, vip(i), 80, 'S');
      const sent = lab.send(spec);
      expect(sent.verdict).toBe(V.FORWARD);
      expect(added[i]!.ids).toContain(sent.dest);
    }
    // The flow from before the pools grew keeps its destination and its counters.
    expect(lab.send(tcp('198.18.7.1', 1000, vip(0), 80, 'A')).dest).toBe(first.ids[0]);
    expect(lab.p.stats(first.svc)).toMatchObject({ conns: 1n, inpkts: 2n });
    expect(lab.p.stats('total')).toMatchObject({ conns: 40n, inpkts: 41n });
    expect(lab.p.services().map((s) => s.address ?? `fwmark ${s.fwmark}`)).toEqual([...Array.from({ length: 40 }, (_, i) => vip(i)), 'fwmark 9']);
    // Deleting them all and adding back reuses the records: the pool does not grow again.
    for (const a of added.slice(1)) lab.p.deleteService(a.svc);
    const again = lab.p.addService({ protocol: 'tcp', address: vip(50), port: 80 });
    expect(again).toBeLessThan(64);
  });
});

