// The share encoding: state → bytes → base64url hash → state is exact; it is compact; damaged or
// foreign input is refused with a message, never half-loaded; a link that would inflate past the
// limit is refused while inflating.
import { describe, it, expect } from 'vitest';
import { deflateSync } from 'node:zlib';
import { encodeState, decodeState, stateToHash, stateFromHash, toBase64url, fromBase64url, ShareError, MAX_STATE_BYTES, type ShareState } from '../../host-browser/src/share.js';
import { PRESETS, presetById } from '../../host-browser/src/presets.js';
import { editsFromText, editsText } from '../../host-browser/src/ui/scene-edits.js';
import { YAML_MAX_DEPTH } from '../../host-node/kube/yaml-depth.js';

const preset = presetById('affinity')!;
const state: ShareState = {
  objects: { yaml: preset.yaml! },
  mode: 'ipvs', scheduler: 'mh',
  packet: { ...preset.packet, sport: 43210 },
  clockMs: 61_000,
};

describe('share encoding', () => {
  it('round-trips the whole state through the URL hash exactly', async () => {
    const hash = await stateToHash(state);
    expect(hash).toMatch(/^#s=[A-Za-z0-9_-]+$/);
    expect(await stateFromHash(hash)).toEqual(state);
    expect(await stateFromHash(hash.slice(1))).toEqual(state);
    const byPreset: ShareState = { ...state, objects: { preset: 'scale-20k' }, mode: 'iptables', scheduler: 'rr', clockMs: 0 };
    expect(await decodeState(await encodeState(byPreset))).toEqual(byPreset);
  });

  it('is compact: a state carrying every preset\'s YAML deflates to under a third of it', async () => {
    const yaml = PRESETS.filter((p) => p.yaml).map((p) => p.yaml).join('---\n');
    const bytes = await encodeState({ ...state, objects: { yaml } });
    expect(bytes[0]).toBe(1);   // deflated
    expect(bytes.length).toBeLessThan(yaml.length / 3);
  });

  it('base64url round-trips every byte value and length', () => {
    for (let n = 0; n < 70; n++) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
      const text = toBase64url(b);
      expect(text).not.toMatch(/[+/=]/);
      expect(fromBase64url(text)).toEqual(b);
    }
  });

  it('refuses damaged and foreign input with a ShareError', async () => {
    const good = await encodeState(state);
    await expect(decodeState(new Uint8Array([9, 1, 2]))).rejects.toThrow(ShareError);
    await expect(decodeState(Uint8Array.of(1, ...good.subarray(1, 20)))).rejects.toThrow(/damaged/);
    await expect(stateFromHash('#s=not*base64')).rejects.toThrow(/base64url/);
    expect(await stateFromHash('#something-else')).toBeNull();
    // Well-formed msgpack with a wrong field is refused by name.
    const { Packr } = await import('msgpackr');
    const packr = new Packr({ useRecords: false });
    const forge = async (o: unknown) => decodeState(Uint8Array.of(2, ...(packr.pack(o) as Uint8Array)));
    const base = { v: 1, o: { preset: 'clusterip' }, m: 'iptables', s: 'rr', p: state.packet, c: 0 };
    await expect(forge(base)).resolves.toMatchObject({ objects: { preset: 'clusterip' } });
    await expect(forge({ ...base, v: 2 })).rejects.toThrow(/version 2/);
    await expect(forge({ ...base, m: 'nft' })).rejects.toThrow(/unknown mode/);
    // A scene or scheduler the page does not have is refused here, before the page shows any of it.
    await expect(forge({ ...base, o: { preset: 'nope' } })).rejects.toThrow('shared state: unknown preset "nope"');
    await expect(forge({ ...base, s: 'pod' })).rejects.toThrow('shared state: unknown IPVS scheduler "pod"');
    await expect(forge({ ...base, m: 'direct', s: 7 })).rejects.toThrow(ShareError);
    await expect(forge({ ...base, m: 'ipvs', s: 'mh' })).resolves.toMatchObject({ scheduler: 'mh' });
    await expect(forge({ ...base, c: -1 })).rejects.toThrow(/clock/);
    await expect(forge({ ...base, p: { ...state.packet, dport: 70000 } })).rejects.toThrow(/packet.dport/);
    await expect(forge({ ...base, p: { ...state.packet, proto: 'icmp' } })).rejects.toThrow(/packet.proto/);
    await expect(forge({ ...base, o: { yaml: 3 } })).rejects.toThrow(/objects/);
    // Edits nested deeper than any manifest (the editor prints them as YAML, a recursion per level:
    // a thousand levels overflowed it) are refused; as deep as the limit, they print and read back.
    const nested = (levels: number) => {
      let spec: unknown = 'x';
      for (let i = 1; i < levels; i++) spec = { a: spec };
      return [{ kind: 'Service', metadata: { name: 'deep' }, spec }];
    };
    await expect(forge({ ...base, o: { preset: 'clusterip', edits: nested(1000) } })).rejects.toThrow(`shared state: edits nested more than ${YAML_MAX_DEPTH} levels deep: not read`);
    const deepest = nested(YAML_MAX_DEPTH - 1);
    const back = await forge({ ...base, o: { preset: 'clusterip', edits: deepest } });
    expect(back.objects).toEqual({ preset: 'clusterip', edits: deepest });
    expect(editsFromText(editsText(presetById('clusterip')!, deepest))).toEqual({ objects: deepest, issues: [] });
  });

  it('refuses a link that inflates past MAX_STATE_BYTES before holding it all (a deflate bomb)', async () => {
    // A msgpack string of MAX_STATE_BYTES + 1 letters: deflated, about a thousandth of that.
    const n = MAX_STATE_BYTES + 1;
    const body = new Uint8Array(5 + n).fill(0x61);
    body.set([0xdb, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
    const deflated = (b: Uint8Array): Uint8Array => {
      const z = deflateSync(b);
      const out = new Uint8Array(z.length + 1);
      out[0] = 1;
      out.set(z, 1);
      return out;
    };
    const bomb = deflated(body);
    expect(bomb.length).toBeLessThan(n / 500);
    await expect(decodeState(bomb)).rejects.toThrow(new ShareError('the shared state inflates to more than 64 MiB: refused'));
    // At the limit it inflates, and is then refused for what it holds.
    await expect(decodeState(deflated(body.subarray(0, MAX_STATE_BYTES)))).rejects.toThrow(/damaged \(not msgpack\)/);
  });
});
