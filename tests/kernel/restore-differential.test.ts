// Kernel differential of the iptables text front end: random rules (tests/support/iptables-gen.ts,
// valid and invalid, every match and target modelled, IPv4 and IPv6) go one by one to the
// kernel's iptables-legacy-restore inside a throwaway namespace and to parseRestore; both must
// accept or both refuse, and for the accepted ones iptables-save, `-S` and `-L -n [-v -x
// --line-numbers]` must print what svcplane prints. Then random restore scripts (commands over a
// few chains of every table, --noflush or not, --counters or not) run one after the other
// against the kernel and a Dataplane: same acceptance, and after each accepted one the same
// `-L -n -v -x` of every table, counters included. A refused script may leave the kernel with
// the tables it committed before the failing one (iptables-restore commits table by table;
// svcplane applies all or nothing), so then svcplane is reloaded from the kernel's state.
// SVCPLANE_RESTORE_RULES (default 300 per family), SVCPLANE_RESTORE_SCRIPTS (default 120 per
// family) and SVCPLANE_RESTORE_SEED (default 1) choose the run.
import { afterAll, describe, expect, it } from 'vitest';
import { NetnsScope, kernelSkip, type Netns } from '../support/netns';
import { Rng } from '../support/kube-gen';
import { RuleGen, ScriptGen, ruleBlock, RULE_CHAINS, type GenRule, type TableName } from '../support/iptables-gen';
import { parseRestore, renderList, renderRules, renderSave } from '../../host-node/netfilter/index';
import { Dataplane } from '../../host-node/dataplane';

const RULES = Number(process.env.SVCPLANE_RESTORE_RULES ?? 300);
const SCRIPTS = Number(process.env.SVCPLANE_RESTORE_SCRIPTS ?? 120);
const SEED = Number(process.env.SVCPLANE_RESTORE_SEED ?? 1);
const TABLES: readonly TableName[] = ['filter', 'nat', 'mangle', 'raw'];

const TOOLS = ['iptables-legacy-restore', 'iptables-legacy-save', 'iptables-legacy', 'ip6tables-legacy-restore', 'ip6tables-legacy-save', 'ip6tables-legacy'];
const skipWhy = kernelSkip('tests/kernel/restore-differential', TOOLS, 'apt-get install iptables');

/** The kernel side: one namespace, its iptables-legacy tools for one family. */
class KernelTables {
  constructor(private readonly scope: NetnsScope, private readonly ns: Netns, readonly family: 4 | 6) {}

  private tool(name: 'restore' | 'save' | ''): string {
    return `${this.family === 4 ? 'iptables' : 'ip6tables'}-legacy${name ? '-' + name : ''}`;
  }

  restore(text: string, args: string[] = []): { ok: boolean; why: string } {
    const r = this.scope.exec(this.ns, [this.tool('restore'), ...args], { input: text });
    return { ok: r.code === 0, why: r.stderr.trim().split('\n').pop() ?? '' };
  }

  save(table?: TableName, counters = false): string {
    const args = [...(table ? ['-t', table] : []), ...(counters ? ['-c'] : [])];
    return this.scope.must(this.ns, [this.tool('save'), ...args]).split('\n').filter((l) => !l.startsWith('#')).join('\n');
  }

  list(table: TableName, args: string[]): string {
    return this.scope.must(this.ns, [this.tool(''), '-t', table, ...args]);
  }
}

const rules = (save: string): string[] => save.split('\n').filter((l) => l.startsWith('-A'));

/**
 * Rule by rule: acceptance, then iptables-save of each accepted one, and `-S` / `-L` of all the
 * accepted ones of a table loaded together (when the kernel takes them together). `ours` may
 * rewrite a rule's text before svcplane reads it (the harness's own check uses it). Returns the
 * differences found, described.
 */
function compareRules(k: KernelTables, gen: GenRule[], ours: (text: string) => string = (t) => t, dp?: Dataplane): { diffs: string[]; accepted: number } {
  const diffs: string[] = [];
  const accepted: GenRule[] = [];
  for (const r of gen) {
    const text = ruleBlock(r);
    const kr = k.restore(text);
    const or = parseRestore(ours(text), { family: k.family });
    if (kr.ok !== or.ok) {
      diffs.push(`[${r.table} ${r.chain}] ${r.text}: kernel ${kr.ok ? 'accepts' : `refuses (${kr.why})`}, svcplane ${or.ok ? 'accepts' : `refuses (${or.error.reason})`}`);
      continue;
    }
    if (!kr.ok || !or.ok) continue;
    accepted.push(r);
    // What the text front end takes, the core must take too.
    try {
      dp?.iptablesRestore(ours(text), { family: k.family });
    } catch (e) {
      diffs.push(`[${r.table} ${r.chain}] ${r.text}: the core refuses what the parser accepts: ${(e as Error).message}`);
    }
    const want = rules(k.save(r.table));
    const got = rules(renderSave(or.ruleset, { form: 'kernel', tables: [r.table] }));
    if (want.join('\n') !== got.join('\n')) diffs.push(`[${r.table}] ${r.text}: iptables-save ${JSON.stringify(want)}, svcplane ${JSON.stringify(got)}`);
  }
  for (const table of TABLES) {
    const rs = accepted.filter((r) => r.table === table);
    if (rs.length === 0) continue;
    const text = `*${table}\n${RULE_CHAINS.map((c) => `:${c} - [0:0]\n`).join('')}${rs.map((r) => `-A ${r.chain} ${r.text}\n`).join('')}COMMIT\n`;
    const kr = k.restore(text);
    const or = parseRestore(ours(text), { family: k.family });
    if (kr.ok !== or.ok) diffs.push(`${table}, ${rs.length} rules together: kernel ${kr.ok ? 'accepts' : `refuses (${kr.why})`}, svcplane ${or.ok ? 'accepts' : `refuses (${or.error.reason})`}`);
    if (!kr.ok || !or.ok) continue;
    const views: Array<[string, string, string]> = [
      ['-S', k.list(table, ['-S']), renderRules(or.ruleset, table)],
      ['-L -n -v -x --line-numbers', k.list(table, ['-L', '-n', '-v', '-x', '--line-numbers']), renderList(or.ruleset, table, undefined, { exact: true, lineNumbers: true })],
      ['-L -n', k.list(table, ['-L', '-n']), renderList(or.ruleset, table, undefined, { verbose: false })],
    ];
    for (const [what, want, got] of views) {
      if (want === got) continue;
      const a = want.split('\n'), b = got.split('\n');
      const i = a.findIndex((l, j) => l !== b[j]);
      diffs.push(`${table} ${what}, line ${i + 1}: kernel ${JSON.stringify(a[i])}, svcplane ${JSON.stringify(b[i])}`);
    }
  }
  return { diffs, accepted: accepted.length };
}

describe.skipIf(skipWhy !== '')('iptables-restore text: svcplane vs the kernel\'s iptables-legacy', () => {
  const scope = new NetnsScope('rdiff');
  afterAll(() => scope.destroy());

  it('the comparison sees a difference: a rule read differently on svcplane\'s side only is caught', () => {
    const k = new KernelTables(scope, scope.create('check'), 4);
    const gen = [{ table: 'filter', chain: 'TEST', text: '-p tcp --dport 80 -j ACCEPT' }, { table: 'filter', chain: 'TEST', text: '-p udp --dport 65536 -j ACCEPT' }] satisfies GenRule[];
    expect(compareRules(k, gen).diffs).toEqual([]);
    const { diffs } = compareRules(k, gen, (t) => t.replace('--dport 80', '--dport 81').replace('65536', '65536x'));
    expect(diffs.length).toBe(5);
    expect(diffs[0]).toMatch(/iptables-save .*--dport 80.*svcplane .*--dport 81/);
    expect(diffs[1]).toMatch(/kernel accepts, svcplane refuses/);
  });

  it('options spelled as getopt_long allows (cut short, `--name=value`, joined to their value, `--`) are taken or refused as the kernel does', () => {
    const filter = [
      '--proto tcp --dpo 80 -j ACCEPT', '--desti 198.18.0.1 --sr 198.19.0.1 -j ACCEPT', '--d 198.18.0.1 -j ACCEPT',
      '-p tcp -m multiport --dport 80,443 -j ACCEPT', '-p tcp -m tcp -m multiport --dport 80 --dports 443 -j ACCEPT',
      '-p tcp -m tcp -m multiport --dport 80 -j ACCEPT', '-p udp -m multiport --sports 80 --sport 1:80 -j ACCEPT',
      '-p udp -m multiport --sports 80:5454 --destination-port :864 -j ACCEPT', '-p tcp -m tcp --dport 1 -m tcp --dpo 2 -j ACCEPT',
      '-m comment --comm hello -j ACCEPT', '-p tcp --sp 1:2 --dp 3 -j ACCEPT', '-p tcp --tcp-f SYN,ACK SYN -j ACCEPT',
      '-m conntrack --ctsta NEW -j ACCEPT', '-m conntrack --ctstate NEW --ctdir ORIGINAL -j ACCEPT',
      '-m statistic --mode random --prob 0.5 -j ACCEPT', '-m addrtype --dst LOCAL -j ACCEPT', '-m addrtype --dst-t LOCAL -j ACCEPT',
      // `--name=value`: optarg for most, the whole word for -s -d -p -j -i -o, unknown without an argument.
      '-p tcp --dport=80 -j ACCEPT', '--match=comment --comment x -j ACCEPT', '-p tcp --goto=OTHER', '--protocol=tcp -j ACCEPT',
      '--src=198.18.0.1 -j ACCEPT', '--jump=ACCEPT', '--in-interface=eth0 -j ACCEPT', '--fragments=1 -j ACCEPT', '-p tcp --syn=1 -j ACCEPT',
      '-ieth0 -j ACCEPT', '-oeth0 -j ACCEPT', '-ptcp --dport 80 -j ACCEPT', '-mcomment --comment x -j ACCEPT',
      // `--` ends the options: nothing may follow it.
      '-j ACCEPT --', '-p tcp -j ACCEPT -- x', '-m comment --comment -- -j ACCEPT',
    ].map((text) => ({ table: 'filter', chain: 'TEST', text }));
    const nat = ['-p tcp -j DNAT --to 198.18.0.1:80', '-j SNAT --to 198.18.0.1', '-p tcp -j MASQUERADE --to 1024', '-p tcp -j REDIRECT --to 8080', '-j DNAT --t 198.18.0.1']
      .map((text) => ({ table: 'nat', chain: 'TEST', text }));
    const mangle = ['-j MARK --set 1', '-j MARK --set-x 1', '-j CONNMARK --save', '-j CONNMARK --set-m 1']
      .map((text) => ({ table: 'mangle', chain: 'TEST', text }));
    const gen = [...filter, ...nat, ...mangle] satisfies GenRule[];
    const { diffs, accepted } = compareRules(new KernelTables(scope, scope.create('abbrev'), 4), gen);
    expect(diffs).toEqual([]);
    expect(accepted).toBeGreaterThan(10);
    expect(accepted).toBeLessThan(gen.length - 3);
  });

  it('a `:CHAIN` line takes any name libiptc takes, where -N refuses some', () => {
    const k = new KernelTables(scope, scope.create('names'), 4);
    const texts = [
      ':!X - [0:0]\n-A !X -j ACCEPT\n-A INPUT -j !X', ':-X - [0:0]', ':LOG - [0:0]\n-A LOG -j ACCEPT', ':DNAT - [0:0]', ':ACCEPT - [0:0]',
      ':ABCDEFGHIJKLMNOPQRSTUVWXYZ12 - [0:0]', ':ABCDEFGHIJKLMNOPQRSTUVWXYZ123 - [0:0]', '-N !X', '-N LOG', '-N -X',
    ].map((body) => `*filter\n${body}\nCOMMIT\n`);
    const diffs: string[] = [];
    for (const text of texts) {
      const kr = k.restore(text);
      const or = parseRestore(text, { family: 4 });
      if (kr.ok !== or.ok) diffs.push(`${JSON.stringify(text)}: kernel ${kr.ok ? 'accepts' : `refuses (${kr.why})`}, svcplane ${or.ok ? 'accepts' : `refuses (${or.error.reason})`}`);
      else if (kr.ok && or.ok) {
        const body = (save: string) => save.split('\n').filter((l) => l.startsWith(':') || l.startsWith('-A')).join('\n');
        const want = body(k.save('filter')), got = body(renderSave(or.ruleset, { form: 'kernel', tables: ['filter'] }));
        if (want !== got) diffs.push(`${JSON.stringify(text)}: kernel saves ${JSON.stringify(want)}, svcplane ${JSON.stringify(got)}`);
      }
    }
    expect(diffs).toEqual([]);
  });

  for (const family of [4, 6] as const) {
    it(`${RULES} random IPv${family} rules: accepted or refused alike, printed alike, and loaded by the core`, async () => {
      const k = new KernelTables(scope, scope.create(`rules${family}`), family);
      const g = new RuleGen(new Rng(SEED * 7919 + family), family);
      const gen = Array.from({ length: RULES }, () => g.rule());
      const dp = await Dataplane.create({ nodeIPs: [family === 4 ? '198.18.0.1' : 'fd00::1'] });
      const t0 = Date.now();
      const { diffs, accepted } = compareRules(k, gen, undefined, dp);
      console.log(`restore differential IPv${family}: ${RULES} rules, ${accepted} accepted by both, ${diffs.length} differences, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      expect(diffs).toEqual([]);
      // The generator must keep reaching both sides of the question.
      expect(accepted).toBeGreaterThan(RULES / 10);
      expect(accepted).toBeLessThan(RULES * 0.9);
    });

    it(`${SCRIPTS} random IPv${family} restore scripts one after the other: same acceptance, same tables and counters`, async () => {
      const k = new KernelTables(scope, scope.create(`scripts${family}`), family);
      for (const t of TABLES) k.list(t, ['-L', '-n']);   // every table exists on both sides
      const dp = await Dataplane.create({ nodeIPs: [family === 4 ? '198.18.0.1' : 'fd00::1'] });
      const resync = (): void => { dp.iptablesRestore(k.save(undefined, true) + '\n', { family, counters: true }); };
      resync();
      const g = new ScriptGen(new Rng(SEED * 104729 + family), family);
      const diffs: string[] = [];
      let applied = 0;
      for (let i = 0; i < SCRIPTS && diffs.length < 5; i++) {
        const text = g.script();
        const noflush = i % 10 < 7;
        const counters = i % 3 === 0;
        const kr = k.restore(text, [...(noflush ? ['--noflush'] : []), ...(counters ? ['--counters'] : [])]);
        let why: string | null = null;
        try {
          dp.iptablesRestore(text, { family, noflush, counters });
        } catch (e) {
          why = (e as Error).message;
        }
        if (kr.ok !== (why === null)) diffs.push(`script ${i} (${noflush ? '--noflush ' : ''}${counters ? '--counters' : ''}):\n${text}kernel ${kr.ok ? 'accepts' : `refuses (${kr.why})`}, svcplane ${why === null ? 'accepts' : `refuses (${why})`}`);
        if (!kr.ok || why !== null) {
          resync();
          continue;
        }
        applied++;
        for (const t of TABLES) {
          const want = k.list(t, ['-L', '-n', '-v', '-x']);
          const got = dp.iptablesList(t, undefined, { family, exact: true });
          if (want === got) continue;
          const a = want.split('\n'), b = got.split('\n');
          const j = a.findIndex((l, n) => l !== b[n]);
          diffs.push(`after script ${i}:\n${text}${t} -L line ${j + 1}: kernel ${JSON.stringify(a[j])}, svcplane ${JSON.stringify(b[j])}`);
          resync();
          break;
        }
      }
      console.log(`restore differential IPv${family}: ${SCRIPTS} scripts, ${applied} applied by both, ${diffs.length} differences`);
      expect(diffs).toEqual([]);
      expect(applied).toBeGreaterThan(SCRIPTS / 10);
    });
  }
});
