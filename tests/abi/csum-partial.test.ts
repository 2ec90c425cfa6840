// Descriptor meta bit 1 (CSUM_PARTIAL, ABI.md §I/O) through the raw ABI, as the TUN host uses it
// with offloads on: a TCP connection to a ClusterIP whose client packets arrive with the L4
// checksum field holding only the folded pseudo-header sum (VIRTIO_NET_HDR_F_NEEDS_CSUM), one of
// them a 64 KiB super-packet (GSO) in a slot far larger than any MTU. After NAT the field must
// hold the pseudo-header sum of the rewritten addresses (the port change is not part of it:
// net/core/utils.c inet_proto_csum_replace4 under CHECKSUM_PARTIAL), so that the device finishing
// the checksum (sum of the L4 bytes from csum_start, complemented) gets a valid one; the IPv4
// header checksum is kept complete. Without the bit the same packets carry full checksums that
// stay valid.
import { beforeAll, describe, expect, it } from 'vitest';
import { Dataplane } from '../../host-node/core/dataplane.js';
import { DESC, VERDICTS } from '../../host-node/core/abi.js';
import { buildPacket, checksumsValid, decodePacket, type PacketSpec } from '../../host-node/core/packet.js';
import { finishPartialChecksum, partialChecksum, withPartialChecksum } from '../support/offload.js';

const VIP = '198.18.96.10';
const BACKEND = '198.18.100.2';
const MASQ = '198.18.96.254';
const CLIENT = '198.18.110.2';
const META_CSUM_PARTIAL = 2;
const SLOT = 65536 + 256;
const TCP_CSUM = 16;

const field = (b: Uint8Array): number => (b[20 + TCP_CSUM]! << 8) | b[20 + TCP_CSUM + 1]!;

describe('CSUM_PARTIAL packets through processBatch (TUN offload)', () => {
  let dp: Dataplane;
  let now = 1000;

  beforeAll(async () => {
    dp = await Dataplane.create({ nodeIPs: ['198.18.110.1'], masqueradeIPs: [MASQ], seed: 3 });
    dp.setServices([{ name: 'default/web:http', vip: VIP, port: 80, endpoints: [`${BACKEND}:8080`], masqueradeAll: true }]);
  });

  /** Runs one packet in slot 0 with the given meta; returns verdict, reason and the bytes after. */
  function run(bytes: Uint8Array, meta: number): { verdict: string; reason: number; out: Uint8Array } {
    const core = dp.core;
    const base = core.ioDataPtr();
    const d = core.ioDescPtr();
    new Uint8Array(core.memory.buffer).set(bytes, base);
    const dv = new DataView(core.memory.buffer);
    dv.setUint32(d + DESC.off, 0, true);
    dv.setUint32(d + DESC.len, bytes.length, true);
    dv.setUint32(d + DESC.cap, SLOT, true);
    dv.setUint32(d + DESC.meta, meta, true);
    core.processBatch(1, now++);
    const v = new DataView(core.memory.buffer);
    const len = v.getUint32(d + DESC.len, true);
    return {
      verdict: VERDICTS[v.getUint8(d + DESC.verdict)]!,
      reason: v.getUint16(d + DESC.reason, true),
      out: new Uint8Array(core.memory.buffer).slice(base + v.getUint32(d + DESC.off, true), base + v.getUint32(d + DESC.off, true) + len),
    };
  }

  const client = (sport: number, extra: Partial<PacketSpec>): Uint8Array =>
    buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport, dport: 80, ...extra });

  /** Opens a connection (SYN partial, SYN-ACK full, ACK partial); returns the masquerade port. */
  function handshake(sport: number): number {
    const syn = run(withPartialChecksum(client(sport, { flags: 'S', seq: 100 })), META_CSUM_PARTIAL);
    expect(syn.verdict).toBe('FORWARD');
    const p = decodePacket(syn.out);
    expect([p.src, p.dst, p.dport]).toEqual([MASQ, BACKEND, 8080]);
    const synAck = run(buildPacket({ src: BACKEND, dst: MASQ, proto: 'tcp', sport: 8080, dport: p.sport, flags: 'SA', seq: 500, ack: 101 }), 0);
    expect(synAck.verdict).toBe('FORWARD');
    expect(checksumsValid(synAck.out)).toBe(true);
    const ack = run(withPartialChecksum(client(sport, { flags: 'A', seq: 101, ack: 501 })), META_CSUM_PARTIAL);
    expect(ack.verdict).toBe('FORWARD');
    return p.sport!;
  }

  it('models the device: finishing a partial checksum gives the full one back (TCP, UDP, ICMPv6)', () => {
    const specs: PacketSpec[] = [
      { src: CLIENT, dst: VIP, proto: 'tcp', sport: 1, dport: 2, flags: 'PA', payload: 'abc' },
      { src: CLIENT, dst: VIP, proto: 'udp', sport: 1, dport: 2, payload: 'abcde' },
      { src: 'fd00::1', dst: 'fd00::2', proto: 'tcp', sport: 3, dport: 4, payload: 'x'.repeat(999) },
      { src: 'fd00::1', dst: 'fd00::2', proto: 'udp', sport: 3, dport: 4, payload: 'y' },
      { src: 'fd00::1', dst: 'fd00::2', proto: 'icmpv6', icmp: { type: 128, code: 0, id: 9, seq: 1 } },
    ];
    for (const spec of specs) {
      const full = buildPacket(spec);
      const p = withPartialChecksum(full);
      expect(checksumsValid(p)).toBe(false);
      expect(finishPartialChecksum(p)).toEqual(full);
    }
  });

  it('leaves the rewritten addresses\' pseudo-header sum in the field of a NATed SYN', () => {
    const syn = withPartialChecksum(client(41000, { flags: 'S', seq: 7 }));
    const r = run(syn, META_CSUM_PARTIAL);
    expect(r.verdict).toBe('FORWARD');
    expect(decodePacket(r.out).dst).toBe(BACKEND);
    // Ports changed too (80 → 8080), yet only the addresses moved the partial sum.
    expect(field(r.out)).toBe(partialChecksum(r.out));
    expect(field(r.out)).not.toBe(field(syn));
    expect(checksumsValid(r.out)).toBe(false);
    expect(checksumsValid(finishPartialChecksum(r.out))).toBe(true);
  });

  it('forwards a 64 KiB super-packet intact, with a partial sum the device can finish', () => {
    handshake(41001);
    const payload = new Uint8Array(65535 - 40);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 131 + 7) & 0xff;
    const gso = withPartialChecksum(client(41001, { flags: 'PA', seq: 101, ack: 501, payload, df: true }));
    expect(gso.length).toBe(65535);
    const r = run(gso, META_CSUM_PARTIAL);
    expect(r.verdict).toBe('FORWARD');
    expect(r.out.length).toBe(gso.length);
    const p = decodePacket(r.out);
    expect([p.src, p.dst, p.dport]).toEqual([MASQ, BACKEND, 8080]);
    expect(Buffer.from(r.out.subarray(40)).equals(Buffer.from(payload))).toBe(true);
    expect(field(r.out)).toBe(partialChecksum(r.out));
    expect(checksumsValid(finishPartialChecksum(r.out))).toBe(true);
  });

  it('without the bit, keeps a full checksum full (the same super-packet)', () => {
    handshake(41002);
    const payload = new Uint8Array(65535 - 40).fill(0x5a);
    const full = client(41002, { flags: 'PA', seq: 101, ack: 501, payload });
    expect(checksumsValid(full)).toBe(true);
    const r = run(full, 0);
    expect(r.verdict).toBe('FORWARD');
    expect(checksumsValid(r.out)).toBe(true);
    expect(field(r.out)).not.toBe(partialChecksum(r.out));
  });
});
