// Editing one Service of a generated scene: the editor's text round-trips the edited objects,
// "Show Service" adds a Service's generated objects once, YAML errors keep their line (text nested
// too deep is refused unread), the edits travel in a share link, and the engine applies them on
// top of the scene.
import { describe, it, expect } from 'vitest';
import { editsFromText, editsText, withService } from '../../host-browser/src/ui/scene-edits.js';
import { readFormModel, applyFormEdit } from '../../host-browser/src/ui/objects-model.js';
import { decodeState, encodeState, type ShareState } from '../../host-browser/src/share.js';
import { presetById, scaleService, scaleVip } from '../../host-browser/src/presets.js';
import { YAML_MAX_DEPTH } from '../../host-node/kube/yaml-depth.js';

const scene = presetById('scale-20k')!;

describe('generated scene edits', () => {
  it('shows a Service\'s generated objects as YAML that reads back to the same objects', () => {
    const objects = withService(scene, [], 12345);
    expect(objects).toEqual(scaleService(12345));
    const text = editsText(scene, objects);
    expect(text.startsWith('# Generated: 20,000 Services')).toBe(true);
    expect(editsFromText(text)).toEqual({ objects, issues: [] });
    // The form reads it like any YAML: one Service with its two pods.
    const m = readFormModel(text);
    expect(m.services.map((s) => [s.key, s.clusterIP, s.endpoints.length])).toEqual([['default/svc-12345', scaleVip(12345), 2]]);
  });

  it('adds another Service once, keeping the edits already made', () => {
    const text = editsText(scene, withService(scene, [], 12345));
    const ep = readFormModel(text).services[0]!.endpoints[0]!;
    const edited = applyFormEdit(text, { op: 'condition', service: 'default/svc-12345', slice: ep.slice, index: ep.index, condition: 'terminating', value: true });
    const { objects } = editsFromText(edited);
    const more = withService(scene, objects, 7);
    expect(more).toHaveLength(4);
    expect(more.slice(0, 2)).toEqual(objects);
    expect(withService(scene, more, 7)).toEqual(more);
    expect(readFormModel(editsText(scene, more)).services.map((s) => s.key)).toEqual(['default/svc-12345', 'default/svc-7']);
    expect((more[1] as { endpoints: Array<{ conditions: object }> }).endpoints[0]!.conditions).toEqual({ ready: false, serving: true, terminating: true });
  });

  it('text nested deeper than any manifest is refused with its line before the YAML parser reads it', () => {
    const deep = [`x: ${'['.repeat(5000)}`, `x: ${'? '.repeat(5000)}y`, `${'- '.repeat(5000)}x`, `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`];
    for (let round = 0; round < 2; round++) {
      for (const text of deep) {
        expect(editsFromText(text)).toEqual({ objects: [], issues: [{ severity: 'error', path: '', line: 1, message: `nested more than ${YAML_MAX_DEPTH} levels deep: not read` }] });
        expect(readFormModel(text)).toEqual({ services: [], error: `line 1: nested more than ${YAML_MAX_DEPTH} levels deep: not read` });
      }
    }
  });

  it('a YAML error is reported with its line and yields no objects', () => {
    const bad = `${editsText(scene, scaleService(1))}  - [unclosed\n`;
    const r = editsFromText(bad);
    expect(r.objects).toEqual([]);
    expect(r.issues.length).toBeGreaterThan(0);
    expect(r.issues[0]!.line).toBeGreaterThan(3);
  });

  it('edits travel in a share link', async () => {
    const state: ShareState = {
      objects: { preset: 'scale-20k', edits: scaleService(3) }, mode: 'iptables', scheduler: 'rr',
      packet: scene.packet, clockMs: 0,
    };
    expect(await decodeState(await encodeState(state))).toEqual(state);
  });
});
