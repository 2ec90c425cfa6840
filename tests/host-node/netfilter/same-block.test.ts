// A restore block written exactly as the one that made the current table (kube-proxy writing the
// same full sync again) is passed over whole (restore.ts sameBlock(), ruleset.ts BlockMemo). These
// tests compare every such restore with the same text read line by line (strict mode: the memo
// is only used with the options it was made with, and the texts here quote their comments, so
// strict reading means the same) and check the blocks that must not be passed over.
import { describe, expect, it } from 'vitest';
import { parseRestore, renderSave, type Ruleset } from '../../../host-node/netfilter/index.js';

function ok(text: string, opts: Parameters<typeof parseRestore>[1] = {}): { ruleset: Ruleset; touched: Set<string> } {
  const r = parseRestore(text, opts);
  if (!r.ok) throw new Error(r.error.message);
  return r;
}

/** A kube-proxy-shaped nat block of `n` services (over 64 KiB for n ≥ 300): every chain declared,
 *  every rule appended to a chain declared before it. `extra` lines go before COMMIT. */
function natBlock(n: number, extra: readonly string[] = []): string {
  const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]'];
  for (let i = 0; i < n; i++) lines.push(`:KUBE-SVC-${i} - [0:0]`, `:KUBE-SEP-${i} - [0:0]`);
  lines.push('-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000');
  for (let i = 0; i < n; i++) {
    const vip = `198.18.${i >> 8}.${i & 255}`, pod = `198.19.${i >> 8}.${i & 255}`;
    lines.push(`-A KUBE-SERVICES -d ${vip}/32 -p tcp -m comment --comment "ns/svc-${i}:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-${i}`);
    lines.push(`-A KUBE-SVC-${i} -m comment --comment "ns/svc-${i}:http -> ${pod}:8080" -j KUBE-SEP-${i}`);
    lines.push(`-A KUBE-SEP-${i} -s ${pod}/32 -m comment --comment "ns/svc-${i}:http" -j KUBE-MARK-MASQ`);
    lines.push(`-A KUBE-SEP-${i} -p tcp -m comment --comment "ns/svc-${i}:http" -m tcp -j DNAT --to-destination ${pod}:8080`);
  }
  lines.push(...extra, 'COMMIT');
  return lines.join('\n') + '\n';
}

const FILTER = '*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n-A KUBE-FIREWALL -j DROP\nCOMMIT\n';

/** The restore read line by line (the memo only serves non-strict reads of these texts). */
function reference(text: string, base: Ruleset, noflush: boolean): { ruleset: Ruleset; touched: Set<string> } {
  return ok(text, { base, noflush, strict: true });
}

describe('a block written again exactly', () => {
  for (const noflush of [false, true]) {
    it(`${noflush ? '--noflush' : 'replacing'}: touches nothing, keeps the table object, equals reading it`, () => {
      const text = natBlock(400) + FILTER;
      const first = ok(text, { noflush });
      const again = ok(Buffer.from(text).toString(), { noflush, base: first.ruleset });
      const ref = reference(text, first.ruleset, noflush);
      expect([...again.touched]).toEqual([...ref.touched]);
      expect([...again.touched]).toEqual([]);
      expect(again.ruleset.table('nat')).toBe(first.ruleset.table('nat'));
      expect(renderSave(again.ruleset)).toBe(renderSave(ref.ruleset));
      expect(renderSave(again.ruleset, { counters: true })).toBe(renderSave(first.ruleset, { counters: true }));
    });
  }

  it('a changed table in between makes the block read again: the rule added since is flushed away', () => {
    const text = natBlock(400);
    const first = ok(text, { noflush: true });
    const edited = ok('*nat\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n', { noflush: true, base: first.ruleset });
    expect(edited.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules.length).toBe(401);
    const again = ok(text, { noflush: true, base: edited.ruleset });
    expect([...again.touched]).toEqual(['nat/KUBE-SERVICES']);
    expect(again.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules.length).toBe(400);
    expect(renderSave(again.ruleset)).toBe(renderSave(reference(text, edited.ruleset, true).ruleset));
  });

  it('a --noflush block appending to a chain it did not declare is read again: the append happens twice', () => {
    const text = natBlock(400, ['-A PREROUTING -j KUBE-SERVICES']);
    const first = ok(text, { noflush: true });
    const again = ok(text, { noflush: true, base: first.ruleset });
    const ref = reference(text, first.ruleset, true);
    expect(again.ruleset.table('nat')!.chain('PREROUTING')!.rules.length).toBe(2);
    expect([...again.touched]).toEqual(['nat/PREROUTING']);
    expect(renderSave(again.ruleset)).toBe(renderSave(ref.ruleset));
  });

  it('a --noflush block with another command than -A is read again', () => {
    const text = natBlock(400, ['-I KUBE-SERVICES 1 -j RETURN']);
    const first = ok(text, { noflush: true });
    expect(first.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules[0]!.target?.kind).toBe('RETURN');
    const again = ok(text, { noflush: true, base: first.ruleset });
    expect(renderSave(again.ruleset)).toBe(renderSave(reference(text, first.ruleset, true).ruleset));
    expect(again.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules.length).toBe(401);
  });

  it('other options than the block was read with read it again', () => {
    const text = natBlock(400);
    const first = ok(text);
    const counted = ok(text, { base: first.ruleset, counters: true });
    expect(counted.ruleset.table('nat')).not.toBe(first.ruleset.table('nat'));
    expect(renderSave(counted.ruleset)).toBe(renderSave(first.ruleset));
  });

  it('a longer or different block is read: one character more in the last rule, a line after COMMIT', () => {
    const text = natBlock(400);
    const first = ok(text, { noflush: true });
    const changed = text.replace(/8080\nCOMMIT/, '8081\nCOMMIT');
    expect(changed).not.toBe(text);
    const r = ok(changed, { noflush: true, base: first.ruleset });
    expect([...r.touched]).toEqual(['nat/KUBE-SEP-399']);
    const glued = ok(text.replace(/COMMIT\n$/, 'COMMIT\n*filter\n:KUBE-FIREWALL - [0:0]\nCOMMIT\n'), { noflush: true, base: first.ruleset });
    expect([...glued.touched].sort()).toEqual(['filter/FORWARD', 'filter/INPUT', 'filter/KUBE-FIREWALL', 'filter/OUTPUT']);
    const bad = parseRestore(text.replace(/COMMIT\n$/, 'COMMITX\n'), { noflush: true, base: first.ruleset });
    expect(bad.ok).toBe(false);
  });

  it('lines after a passed-over block keep their numbers in errors, CRLF line ends too', () => {
    for (const eol of ['\n', '\r\n']) {
      const block = natBlock(400).replace(/\n/g, eol);
      const first = ok(block, { noflush: true });
      const text = block + `*filter${eol}-A NOPE -j DROP${eol}COMMIT${eol}`;
      const r = parseRestore(text, { noflush: true, base: first.ruleset });
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      const lines = block.split(eol).length - 1;
      expect(r.error.line).toBe(lines + 2);
      expect(r.error.word).toBe('NOPE');
    }
  });
});
