// TunPump with offloads, against a stand-in device (no root): every packet read carries a
// 12-byte virtio header; what goes back must carry the right one. A NATed packet keeps the header
// it came with (NEEDS_CSUM, csum_start/offset, GSO type and size), its partial sum moved by the
// address change only; a reply the core generated goes back with an all-zero header and complete
// checksums; a 40 KB super-packet the core passes goes back whole; a read too short to hold a
// header is counted, not processed. Counters say how many super-packets and partial checksums came in.
import { beforeAll, describe, expect, it } from 'vitest';
import { Dataplane } from '../../../host-node/core/dataplane.js';
import { buildPacket, checksumsValid, decodePacket } from '../../../host-node/core/packet.js';
import { partialChecksum, withPartialChecksum } from '../../support/offload.js';
import { TunPump, VNET_HDR_BYTES, type TunDevice } from '../../../host-node/io/tun.js';

const VIP = '198.18.96.10';
const BACKEND = '198.18.100.2';
const MASQ = '198.18.96.254';
const CLIENT = '198.18.110.2';

/** struct virtio_net_hdr (+2 bytes of padding): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset. */
function vnetHdr(h: { flags?: number; gsoType?: number; hdrLen?: number; gsoSize?: number; csumStart?: number; csumOffset?: number }): Uint8Array {
  const b = new Uint8Array(VNET_HDR_BYTES);
  const dv = new DataView(b.buffer);
  b[0] = h.flags ?? 0;
  b[1] = h.gsoType ?? 0;
  dv.setUint16(2, h.hdrLen ?? 0, true);
  dv.setUint16(4, h.gsoSize ?? 0, true);
  dv.setUint16(6, h.csumStart ?? 0, true);
  dv.setUint16(8, h.csumOffset ?? 0, true);
  return b;
}
const NEEDS_CSUM = { flags: 1, csumStart: 20, csumOffset: 16 };
const GSO_TCPV4 = { ...NEEDS_CSUM, gsoType: 1, hdrLen: 40, gsoSize: 1448 };

const join = (a: Uint8Array, b: Uint8Array): Uint8Array => { const o = new Uint8Array(a.length + b.length); o.set(a); o.set(b, a.length); return o; };

describe('TunPump with offloads (stand-in device)', () => {
  let dp: Dataplane;
  const queue: Uint8Array[] = [];
  const written: Uint8Array[] = [];
  let pump: TunPump;

  beforeAll(async () => {
    dp = await Dataplane.create({ nodeIPs: ['198.18.110.1'], masqueradeIPs: [MASQ], serviceCIDR: ['198.18.96.0/24'], seed: 5 });
    dp.setServices([
      { name: 'default/web:http', vip: VIP, port: 80, endpoints: [`${BACKEND}:8080`], masqueradeAll: true },
      { name: 'default/empty:http', vip: VIP, port: 81, endpoints: [] },
    ]);
    const device = {
      fd: -1, name: 'stand-in', vnetHdr: VNET_HDR_BYTES, isOpen: true,
      read(buf: Uint8Array): number { const p = queue.shift(); if (!p) return 0; buf.set(p); return p.length; },
      write(buf: Uint8Array, n: number): number { written.push(buf.slice(0, n)); return n; },
      close() {},
    } as unknown as TunDevice;
    pump = new TunPump(dp, device, 16);
  });

  it('takes 64 KiB slots', () => {
    expect(pump.slotBytes).toBeGreaterThanOrEqual(65535 + VNET_HDR_BYTES);
    expect(pump.batchSize).toBe(16);
  });

  it('keeps the header of a NATed packet and its checksum partial; zeroes it for a generated reply', () => {
    written.length = 0;
    const syn = withPartialChecksum(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }));
    const refused = buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40001, dport: 81, flags: 'S' });
    queue.push(join(vnetHdr(NEEDS_CSUM), syn), join(vnetHdr({}), refused), new Uint8Array(VNET_HDR_BYTES));
    const before = { ...pump.counters };
    expect(pump.pumpOnce(1000)).toBe(2);
    expect(pump.counters.readErrors - before.readErrors).toBe(1);
    expect(pump.counters.csumPartial - before.csumPartial).toBe(1);
    expect(written).toHaveLength(2);

    const [fwd, reply] = written as [Uint8Array, Uint8Array];
    expect(fwd.subarray(0, VNET_HDR_BYTES)).toEqual(vnetHdr(NEEDS_CSUM));
    const out = fwd.subarray(VNET_HDR_BYTES);
    const p = decodePacket(out);
    expect([p.src, p.dst, p.dport]).toEqual([MASQ, BACKEND, 8080]);
    expect((out[36]! << 8) | out[37]!).toBe(partialChecksum(out));

    expect(reply.subarray(0, VNET_HDR_BYTES)).toEqual(new Uint8Array(VNET_HDR_BYTES));
    const r = reply.subarray(VNET_HDR_BYTES);
    expect(decodePacket(r).proto).toBe(1);   // ICMP port unreachable (kube-proxy's REJECT)
    expect(checksumsValid(r)).toBe(true);
  });

  it('passes a super-packet it has no flow for back whole, header and all', () => {
    written.length = 0;
    const payload = new Uint8Array(40_000).map((_, i) => i & 0xff);
    const big = withPartialChecksum(buildPacket({ src: CLIENT, dst: '198.18.120.99', proto: 'tcp', sport: 40002, dport: 443, flags: 'PA', payload }));
    const frame = join(vnetHdr(GSO_TCPV4), big);
    queue.push(frame);
    const before = { ...pump.counters };
    expect(pump.pumpOnce(1001)).toBe(1);
    expect(pump.counters.gsoPackets - before.gsoPackets).toBe(1);
    expect(pump.counters.bytesIn - before.bytesIn).toBe(big.length);
    expect(written).toHaveLength(1);
    expect(Buffer.from(written[0]!).equals(Buffer.from(frame))).toBe(true);
  });
});
