// Pointers and sizes a host hands the core's exports (ABI.md §2, "Pointers and sizes from the host
// are checked"), through the raw exports as an embedder in any language calls them: a range that
// leaves the memory is refused with the export's bad-input result and nothing changes; a staging
// buffer no block can hold is refused with 0 while the old buffer and its bytes stay (before, the
// old block was freed first and the allocator then aborted, leaving the buffer on freed memory that
// the next allocation handed out again); an IPVS connection table over the allocator's block limit
// is an argument out of range. host-node's loader turns a refused staging buffer into an error.
import { describe, it, expect } from 'vitest';
import wasmBase64 from '../../build/core-wasm.js';
import { instantiateCore } from '../../host-node/core/loader.js';
import { Dataplane } from '../../host-node/core/dataplane.js';
import { buildPacket } from '../../host-node/core/packet.js';

type Raw = Record<string, (...a: number[]) => number> & { memory: WebAssembly.Memory };

const module = new WebAssembly.Module(Buffer.from(wasmBase64, 'base64'));

function rawCore(): Raw {
  const instance = new WebAssembly.Instance(module, {
    env: { abort() { throw new Error('the core called abort'); } },
  });
  const x = instance.exports as unknown as Raw;
  expect(x.init(12, 8, 1, 0)).toBe(0);
  return x;
}

/** A pointer this many bytes before the end of the memory (a record there runs past it). */
const nearEnd = (x: Raw, back: number): number => x.memory.buffer.byteLength - back;
const FAR = 0xF0000000;

describe('pointers past the end of the memory', () => {
  it('are refused by every export that reads or writes at them, and change nothing', () => {
    const x = rawCore();
    expect(x.ipvsInit(8, 4, 4, 0)).toBe(0);
    const flows = x.conntrackCount();
    for (const at of [FAR, nearEnd(x, 40)]) {
      const answers = {
        conntrackCheck: x.conntrackCheck(at),
        conntrackImport: x.conntrackImport(at, 0),
        ipvsConnCheck: x.ipvsConnCheck(at),
        ipvsConnLoad: x.ipvsConnLoad(at, 0, -1),
        dnsAnswer: x.dnsAnswer(at, 64, x.dnsAnswerPtr(), 512, 512, 0),
        dnsAnswerTcp: x.dnsAnswerTcp(at, 128, x.dnsAnswerPtr(), 512),
        dnsAnswerOut: x.dnsAnswer(x.dnsQueryPtr(), 12, at, 512, 512, 0),
        dnsAnswerTcpOut: x.dnsAnswerTcp(x.dnsQueryPtr(), 14, at, 512),
        ipvsConnSave: x.ipvsConnSave(0, at, 0),
        svcAffinityLoad: x.svcAffinityLoad(0, at, 0),
        iptRecentLoad: x.iptRecentLoad(0, at, 0),
        iptStageChain: x.iptStageChain(40, at, 64) < 0,
      };
      expect(answers).toEqual({
        conntrackCheck: 0, conntrackImport: -1, ipvsConnCheck: 0, ipvsConnLoad: -1,
        dnsAnswer: -1, dnsAnswerTcp: -1, dnsAnswerOut: -3, dnsAnswerTcpOut: -3, ipvsConnSave: 0,
        svcAffinityLoad: -1, iptRecentLoad: -1, iptStageChain: true,
      });
    }
    expect(x.conntrackCount()).toBe(flows);
    expect(x.ipvsConnCount()).toBe(0);
  });

  it('conntrackExport writes no record past the end, even for a live flow', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], seed: 1 });
    dp.setServices([{ name: 'web', vip: '198.18.96.10', port: 80, endpoints: ['198.18.100.2:8080'] }]);
    expect(dp.process(buildPacket({ src: '198.18.50.1', dst: '198.18.96.10', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }), 1000).verdict).toBe('FORWARD');
    const x = dp.core;
    const slot = x.conntrackNext(0) >>> 0;
    expect(slot).not.toBe(0xFFFFFFFF);
    const end = x.memory.buffer.byteLength;
    expect(x.conntrackExport(slot, x.cfgBuffer(88), 1000)).toBe(88);
    expect(x.conntrackExport(slot, FAR, 1000)).toBe(0);
    expect(x.conntrackExport(slot, end - 87, 1000)).toBe(0);
    expect(x.conntrackExport(slot, end - 88, 1000)).toBe(88);
  });
});

describe('staging buffers of a size no block can have', () => {
  for (const [name, other] of [['cfgBuffer', 'dnsBuffer'], ['dnsBuffer', 'cfgBuffer']] as const) {
    it(`${name}: 0, the old buffer and its bytes kept, and no later block laid over it`, () => {
      const x = rawCore();
      const p = x[name](4096) >>> 0;
      expect(p).toBeGreaterThan(0);
      new Uint8Array(x.memory.buffer, p, 4096).fill(0xA5);
      for (const size of [2 ** 30, 0xFFFFFFFF, 0x80000000]) expect(x[name](size)).toBe(0);
      expect(x[name](4096) >>> 0).toBe(p);
      expect(new Uint8Array(x.memory.buffer, p, 4096).every((b) => b === 0xA5)).toBe(true);
      const q = x[other](4000) >>> 0;
      expect(q + 4000 <= p || q >= p + 4096).toBe(true);
    });
  }

  it('host-node refuses it with an error before anything is written', async () => {
    const core = await instantiateCore();
    expect(() => core.cfgBuffer(2 ** 30)).toThrow(/out of memory: no room for a 1073741824-byte config buffer/);
    expect(core.cfgBuffer(64)).toBeGreaterThan(0);
  });
});

describe('ipvsInit', () => {
  it('refuses a connection table over the allocator limit as out of range, and stays ready to be sized', () => {
    const x = rawCore();
    expect(x.ipvsInit(24, 1, 1, 0)).toBe(-1);
    expect(x.ipvsIsReady()).toBe(0);
    expect(x.ipvsInit(8, 4, 4, 0)).toBe(0);
    expect(x.ipvsIsReady()).toBe(1);
  });
});
