// Output and messages compared with the real tool: fixtures/goldens.json was captured from ipset
// 7.17 on Linux 6.x inside a network namespace (fixtures/capture.mjs). Each scenario's restore input
// is replayed here and `ipset -sorted list`, `-sorted save` and `-terse list` must come out the same,
// byte for byte (Size in memory included: these scenarios fall where the estimate is exact or the
// kernel happened to spread the elements one per bucket); each single command must print the same
// text with the same exit status; each failing restore the same error.
import { describe, it, expect } from 'vitest';
import { makeTable, goldens } from './harness';
import { IpsetError, IPSET_VERSION } from '../../../host-node/ipset/errors';

function outcome(run: () => { status: number; output: string }): { status: number; text: string } {
  try {
    const r = run();
    return { status: r.status, text: r.output };
  } catch (e) {
    if (!(e instanceof IpsetError)) throw e;
    return { status: e.exitCode, text: e.message + '\n' };
  }
}

describe('goldens from ipset 7.17', () => {
  it('were captured from the version we speak', () => {
    expect(goldens.version).toBe(`ipset ${IPSET_VERSION}, protocol version: 7`);
    expect(Object.keys(goldens.scenarios).length).toBeGreaterThanOrEqual(10);
  });

  for (const [name, sc] of Object.entries(goldens.scenarios)) {
    it(`scenario ${name}: list, save and terse list match`, () => {
      const { table, clock } = makeTable();
      table.restore(sc.input);
      // The real listing came a fraction of a second after the adds: timeouts print one less.
      clock.now += 500;
      expect(table.list()).toBe(sc.list);
      expect(table.save()).toBe(sc.save);
      expect(table.list(undefined, { terse: true })).toBe(sc.terse);
    });
  }

  it('every single command prints what ipset printed, with its exit status', () => {
    const { table } = makeTable();
    const diffs: string[] = [];
    for (const c of goldens.commands) {
      const got = outcome(() => table.command(c.args));
      const want = { status: c.status, text: c.stdout + c.stderr };
      if (got.status !== want.status || got.text !== want.text) {
        diffs.push(`${c.args.join(' ')}\n  got  ${JSON.stringify(got)}\n  want ${JSON.stringify(want)}`);
      }
    }
    expect(diffs).toEqual([]);
    expect(goldens.commands.length).toBeGreaterThan(100);
  });

  for (const [name, r] of Object.entries(goldens.restores)) {
    it(`failing restore (${name}) reports what ipset reported`, () => {
      const { table } = makeTable();
      let err: IpsetError | null = null;
      try { table.restore(r.input); } catch (e) { err = e as IpsetError; }
      expect(err).toBeInstanceOf(IpsetError);
      expect(err!.message + '\n').toBe(r.stderr);
      expect(err!.exitCode).toBe(r.status);
    });
  }
});
