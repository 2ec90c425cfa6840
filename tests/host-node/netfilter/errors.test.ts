// Rejected input: each error names the 1-based line and the word at fault with an
// iptables-restore-like message, and the base ruleset passed in is left exactly as it was.
import { describe, expect, it } from 'vitest';
import { parseRestore, renderSave, type Ruleset } from '../../../host-node/netfilter/index.js';
import { Dataplane, RestoreFailed } from '../../../host-node/dataplane.js';

const BASE_TEXT = `*filter
:KUBE-SERVICES - [0:0]
:KUBE-OLD - [0:0]
-A INPUT -j KUBE-SERVICES
-A KUBE-SERVICES -j KUBE-OLD
-A KUBE-OLD -j ACCEPT
COMMIT
*nat
:KUBE-SEP-A - [0:0]
-A PREROUTING -j KUBE-SEP-A
-A KUBE-SEP-A -p tcp -j DNAT --to-destination 10.0.0.1:80
COMMIT
`;

function base(family: 4 | 6 = 4): Ruleset {
  const r = parseRestore(family === 4 ? BASE_TEXT : '*filter\n:X - [0:0]\n-A INPUT -j X\nCOMMIT\n', { family });
  if (!r.ok) throw new Error(r.error.message);
  return r.ruleset;
}

interface Case {
  name: string;
  text: string;
  line: number;
  word: string;
  reason: string | RegExp;
  noflush?: boolean;
  family?: 4 | 6;
  strict?: boolean;
}

const cases: Case[] = [
  { name: 'unknown option', text: '*filter\n:X - [0:0]\n-A X -p tcp --dprot 80 -j ACCEPT\nCOMMIT\n', line: 3, word: '--dprot', reason: 'unknown option "--dprot"' },
  { name: 'option of a match that was not loaded', text: '*filter\n-A INPUT --dport 80 -j ACCEPT\nCOMMIT\n', line: 2, word: '--dport', reason: 'unknown option "--dport"' },
  { name: 'unknown target (no such chain at COMMIT)', text: '*filter\n-A INPUT -j NOSUCH\nCOMMIT\n', line: 2, word: 'NOSUCH', reason: "Couldn't load target `NOSUCH':No such file or directory" },
  { name: 'goto a missing chain', text: '*filter\n-A INPUT -g GONE\nCOMMIT\n', line: 2, word: 'GONE', reason: "goto 'GONE' is not a chain" },
  { name: 'jump to a built-in chain', text: '*filter\n-A FORWARD -j INPUT\nCOMMIT\n', line: 2, word: 'INPUT', reason: /Target problem/ },
  { name: 'bad address', text: '*filter\n\n-A INPUT -s 1.2.3.400 -j ACCEPT\nCOMMIT\n', line: 3, word: '1.2.3.400', reason: "host/network `1.2.3.400' not found" },
  { name: 'bad mask', text: '*filter\n-A INPUT -d 10.0.0.0/33 -j ACCEPT\nCOMMIT\n', line: 2, word: '10.0.0.0/33', reason: "invalid mask `33' specified" },
  { name: 'bad tcp port', text: '*filter\n-A INPUT -p tcp --dport 70000 -j ACCEPT\nCOMMIT\n', line: 2, word: '70000', reason: "invalid port/service `70000' specified" },
  { name: 'bad udp port', text: '*filter\n-A INPUT -p udp --sport 1:2:3 -j ACCEPT\nCOMMIT\n', line: 2, word: '1:2:3', reason: 'udp: Too many components for option "--sport" (max: 2)' },
  { name: 'reversed tcp range', text: '*filter\n-A INPUT -p tcp --dport 90:80 -j ACCEPT\nCOMMIT\n', line: 2, word: '90:80', reason: 'invalid portrange (min > max)' },
  { name: 'missing COMMIT', text: '*filter\n:X - [0:0]\n-A X -j ACCEPT\n', line: 4, word: 'COMMIT', reason: 'COMMIT expected' },
  { name: 'jump to a chain that is never declared', text: '*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-MISSING\nCOMMIT\n', line: 3, word: 'KUBE-SVC-MISSING', reason: "Couldn't load target `KUBE-SVC-MISSING':No such file or directory" },
  { name: 'DNAT in the filter table', text: '*filter\n:X - [0:0]\n-A X -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n', line: 3, word: 'DNAT', reason: 'ip_tables: DNAT target: only valid in nat table, not filter' },
  { name: 'DNAT reachable from POSTROUTING', text: '*nat\n:X - [0:0]\n-A X -p tcp -j DNAT --to-destination 10.0.0.1:80\n-A POSTROUTING -j X\nCOMMIT\n', line: 3, word: 'DNAT', reason: 'ip_tables: DNAT target: used from hooks POSTROUTING, but only usable from PREROUTING/OUTPUT' },
  { name: 'MASQUERADE in PREROUTING', text: '*nat\n-A PREROUTING -j MASQUERADE\nCOMMIT\n', line: 2, word: 'MASQUERADE', reason: 'ip_tables: MASQUERADE target: used from hooks PREROUTING, but only usable from POSTROUTING' },
  { name: 'REJECT outside filter', text: '*mangle\n-A INPUT -j REJECT\nCOMMIT\n', line: 2, word: 'REJECT', reason: 'ip_tables: REJECT target: only valid in filter table, not mangle' },
  { name: 'a jump to a chain the block creates only later (iptables-restore resolves it at its line)', text: '*filter\n-A INPUT -j Y\n-N Y\nCOMMIT\n', line: 2, word: 'Y', reason: "Couldn't load target `Y':No such file or directory" },
  { name: 'a jump to a built-in chain, flushed away again before COMMIT', text: '*filter\n:A - [0:0]\n-A A -g FORWARD\n-F A\nCOMMIT\n', line: 3, word: 'FORWARD', reason: "Target problem: cannot jump to built-in chain `FORWARD'" },
  { name: 'loop in the jump graph', text: '*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\n-A INPUT -j A\nCOMMIT\n', line: 5, word: 'A', reason: 'Loop found in table (B -> A -> B)' },
  { name: 'self loop', text: '*filter\n:A - [0:0]\n-A A -g A\n-A FORWARD -j A\nCOMMIT\n', line: 3, word: 'A', reason: 'Loop found in table (A -> A)' },
  { name: 'a jump into a loop no built-in chain reached before', text: '*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\nCOMMIT\n*filter\n-A INPUT -j A\nCOMMIT\n', line: 9, word: 'A', reason: 'Loop found in table (B -> A)', noflush: true },
  { name: 'loop through chains of the base', text: '*filter\n-I KUBE-OLD -j KUBE-SERVICES\nCOMMIT\n', line: 2, word: 'KUBE-SERVICES', reason: /Loop found in table \(KUBE-OLD -> KUBE-SERVICES -> KUBE-OLD\)/, noflush: true },
  { name: 'deleting a chain still referenced', text: '*filter\n-X KUBE-OLD\nCOMMIT\n', line: 2, word: 'KUBE-OLD', reason: "Can't delete chain with references left", noflush: true },
  { name: 'deleting a chain with rules', text: '*filter\n-D KUBE-SERVICES 1\n-X KUBE-OLD\nCOMMIT\n', line: 3, word: 'KUBE-OLD', reason: 'Chain is not empty', noflush: true },
  { name: 'deleting a built-in chain', text: '*filter\n-X INPUT\nCOMMIT\n', line: 2, word: 'INPUT', reason: "Can't delete built-in chain" },
  { name: 'deleting a missing chain', text: '*filter\n-X NOPE\nCOMMIT\n', line: 2, word: 'NOPE', reason: 'No chain/target/match by that name.' },
  { name: 'appending to a missing chain', text: '*filter\n-A NOPE -j ACCEPT\nCOMMIT\n', line: 2, word: 'NOPE', reason: 'No chain/target/match by that name.' },
  { name: 'unknown table', text: '*foo\nCOMMIT\n', line: 1, word: 'foo', reason: "unable to initialize table 'foo'" },
  { name: 'DROP in nat', text: '*nat\n-A PREROUTING -j DROP\nCOMMIT\n', line: 2, word: 'DROP', reason: /nat" table is not intended for filtering/ },
  { name: '-o in PREROUTING', text: '*nat\n-A PREROUTING -o eth0 -j ACCEPT\nCOMMIT\n', line: 2, word: '-o', reason: "Can't use -o with PREROUTING" },
  { name: 'policy on a user chain', text: '*filter\n:X ACCEPT [0:0]\nCOMMIT\n', line: 2, word: 'X', reason: "Can't set policy `ACCEPT' on `X' line 2: Bad built-in chain name" },
  { name: 'unknown policy', text: '*filter\n:INPUT MAYBE [0:0]\nCOMMIT\n', line: 2, word: 'MAYBE', reason: "Can't set policy `MAYBE' on `INPUT' line 2: Bad policy name" },
  { name: 'chain declared twice without --noflush', text: '*filter\n:X - [0:0]\n:X - [0:0]\nCOMMIT\n', line: 3, word: 'X', reason: "error creating chain 'X':File exists" },
  { name: 'option given twice', text: '*filter\n-A INPUT -p tcp -p udp -j ACCEPT\nCOMMIT\n', line: 2, word: '-p', reason: 'multiple -p flags not allowed' },
  { name: 'missing argument', text: '*filter\n-A INPUT -j\nCOMMIT\n', line: 2, word: '-j', reason: 'option "-j" requires an argument' },
  { name: 'unknown match', text: '*filter\n-A INPUT -m nosuch -j ACCEPT\nCOMMIT\n', line: 2, word: 'nosuch', reason: "Couldn't load match `nosuch':No such file or directory" },
  { name: 'mandatory option missing', text: '*filter\n-A INPUT -m comment -j ACCEPT\nCOMMIT\n', line: 2, word: 'comment', reason: 'comment: option "--comment" must be specified' },
  { name: 'option that cannot be inverted', text: '*filter\n-A INPUT -m comment ! --comment x -j ACCEPT\nCOMMIT\n', line: 2, word: '--comment', reason: 'comment: option "--comment" cannot be inverted.' },
  { name: '! before -m', text: '*filter\n-A INPUT ! -m tcp -j ACCEPT\nCOMMIT\n', line: 2, word: '-m', reason: 'unexpected ! flag before --match' },
  { name: 'dangling !', text: '*filter\n-A INPUT -j ACCEPT !\nCOMMIT\n', line: 2, word: '!', reason: 'nothing appropriate following !' },
  { name: 'statistic nth without --packet', text: '*filter\n-A INPUT -m statistic --mode nth --every 2 -j ACCEPT\nCOMMIT\n', line: 2, word: '--every', reason: 'statistic: option "--every" also requires "--packet".' },
  { name: 'recent with two operations', text: '*filter\n-A INPUT -m recent --set --rcheck -j ACCEPT\nCOMMIT\n', line: 2, word: '--set', reason: 'recent: option "--set" cannot be used together with "--rcheck".' },
  { name: 'recent operation given twice', text: '*filter\n-A INPUT -m recent --set --set -j ACCEPT\nCOMMIT\n', line: 2, word: '--set', reason: 'recent: option "--set" can only be used once.' },
  { name: 'multiport without -p', text: '*filter\n-A INPUT -m multiport --dports 80,443 -j ACCEPT\nCOMMIT\n', line: 2, word: '--dports', reason: "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'" },
  { name: 'DNAT port without -p', text: '*nat\n-A PREROUTING -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n', line: 2, word: '80', reason: 'Need TCP, UDP, SCTP or DCCP with port specification' },
  { name: 'tcp-reset without -p tcp', text: '*filter\n-A INPUT -j REJECT --reject-with tcp-reset\nCOMMIT\n', line: 2, word: 'tcp-reset', reason: 'TCP_RESET invalid for non-tcp' },
  { name: 'IPv6 reject type in IPv4', text: '*filter\n-A INPUT -j REJECT --reject-with icmp6-no-route\nCOMMIT\n', line: 2, word: 'icmp6-no-route', reason: 'unknown reject type "icmp6-no-route"' },
  { name: 'IPv4 address in ip6tables', text: '*filter\n-A INPUT -s 10.0.0.1 -j ACCEPT\nCOMMIT\n', line: 2, word: '10.0.0.1', reason: "host/network `10.0.0.1' not found", family: 6 },
  { name: '-f in ip6tables', text: '*filter\n-A INPUT -f -j ACCEPT\nCOMMIT\n', line: 2, word: '-f', reason: "`-f' is not supported in IPv6, use -m frag instead", family: 6 },
  { name: 'unquoted multi-word comment in strict mode', text: '*filter\n-A INPUT -m comment --comment hello world -j ACCEPT\nCOMMIT\n', line: 2, word: 'world', reason: "Bad argument `world'", strict: true },
  { name: 'unterminated quote', text: '*filter\n-A INPUT -m comment --comment "no end -j ACCEPT\nCOMMIT\n', line: 2, word: '"no end -j ACCEPT', reason: 'unterminated quoted string' },
  { name: 'second table while one is open', text: '*filter\n*nat\nCOMMIT\n', line: 2, word: '*nat', reason: "Bad argument `*nat'" },
  { name: 'rule outside a table', text: '# c\n-A INPUT -j ACCEPT\n', line: 2, word: '-A', reason: /no table selected/ },
  { name: 'insert beyond the end', text: '*filter\n-I INPUT 3 -j ACCEPT\nCOMMIT\n', line: 2, word: '3', reason: 'Index of insertion too big.' },
  { name: 'delete a rule that is not there', text: '*filter\n-D INPUT -p tcp -j ACCEPT\nCOMMIT\n', line: 2, word: 'INPUT', reason: 'Bad rule (does a matching rule exist in that chain?).' },
  { name: 'replacing a table without a chain an unchanged rule still jumps to', text: '*filter\n:KUBE-SERVICES - [0:0]\n-A INPUT -j KUBE-SERVICES\n-A KUBE-SERVICES -j KUBE-OLD\nCOMMIT\n', line: 4, word: 'KUBE-OLD', reason: "Couldn't load target `KUBE-OLD':No such file or directory" },
  { name: 'replacing a table so unchanged DNAT rules become reachable from POSTROUTING', text: '*nat\n:KUBE-SEP-A - [0:0]\n-A POSTROUTING -j KUBE-SEP-A\n-A KUBE-SEP-A -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n', line: 4, word: 'DNAT', reason: 'ip_tables: DNAT target: used from hooks POSTROUTING, but only usable from PREROUTING/OUTPUT' },
  { name: 'replacing a table with a loop through an unchanged rule', text: '*filter\n:KUBE-SERVICES - [0:0]\n:KUBE-OLD - [0:0]\n-A INPUT -j KUBE-SERVICES\n-A KUBE-SERVICES -j KUBE-OLD\n-A KUBE-OLD -j KUBE-SERVICES\nCOMMIT\n', line: 6, word: 'KUBE-SERVICES', reason: 'Loop found in table (KUBE-OLD -> KUBE-SERVICES -> KUBE-OLD)' },
  { name: 'error in the second table (first one not applied either)', text: '*raw\n-A PREROUTING -j CT --notrack\nCOMMIT\n*filter\n-A INPUT -j ACCEPT --bogus\nCOMMIT\n', line: 5, word: '--bogus', reason: 'unknown option "--bogus"' },
];

describe('rejected restores', () => {
  for (const c of cases) {
    it(c.name, () => {
      const b = base(c.family);
      const before = renderSave(b, { form: 'kernel', counters: true });
      const tables = [...b.tables.values()];
      const r = parseRestore(c.text, { base: b, noflush: c.noflush, family: c.family, strict: c.strict });
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.error.line).toBe(c.line);
      expect(r.error.word).toBe(c.word);
      if (typeof c.reason === 'string') expect(r.error.reason).toBe(c.reason);
      else expect(r.error.reason).toMatch(c.reason);
      const prog = (c.family ?? 4) === 4 ? 'iptables-restore' : 'ip6tables-restore';
      expect(r.error.message.startsWith(`${prog}: `)).toBe(true);
      expect(r.error.message).toContain(r.error.reason);
      // The base is untouched: same text and the very same table objects.
      expect(renderSave(b, { form: 'kernel', counters: true })).toBe(before);
      expect([...b.tables.values()]).toEqual(tables);
      tables.forEach((t, i) => expect([...b.tables.values()][i]).toBe(t));
    });
  }

  it('words the message like iptables-restore', () => {
    const r = parseRestore('*filter\n:X - [0:0]\n\n\n\n\n\n\n\n\n\n-A X -p tcp --dprot 80\nCOMMIT\n');
    expect(r.ok || r.error.message).toBe('iptables-restore: line 12 failed: unknown option "--dprot"');
    const m = parseRestore('*filter\n-A INPUT -j ACCEPT\n');
    expect(m.ok || m.error.message).toBe('iptables-restore: COMMIT expected at line 3');
  });

  it('a loop no built-in chain reaches is accepted, as the kernel walks only from the built-in chains', () => {
    for (const text of ['*filter\n:A - [0:0]\n-A A -j A\nCOMMIT\n', '*nat\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -g A\n-A PREROUTING -j ACCEPT\nCOMMIT\n']) {
      const r = parseRestore(text);
      expect(r.ok || r.error.message).toBe(true);
    }
  });

  // Checked on this machine's kernel (iptables-legacy 1.8.9): its walk stops at an unconditional
  // ACCEPT, DROP or RETURN, so what follows is checked once nothing cuts it off any more.
  it('rules past an unconditional verdict are not checked for loops or hooks until they can be reached', () => {
    const nat = parseRestore('*nat\n:X - [0:0]\n-A X -p tcp -j DNAT --to-destination 10.0.0.1\n-A POSTROUTING -j ACCEPT\n-A POSTROUTING -j X\nCOMMIT\n');
    expect(nat.ok || nat.error.message).toBe(true);
    if (!nat.ok) return;
    const woke = parseRestore('*nat\n-D POSTROUTING 1\nCOMMIT\n', { base: nat.ruleset, noflush: true });
    expect(woke.ok || [woke.error.line, woke.error.word, woke.error.reason]).toEqual([3, 'DNAT', 'ip_tables: DNAT target: used from hooks POSTROUTING, but only usable from PREROUTING/OUTPUT']);
    const conditional = parseRestore('*nat\n-I POSTROUTING -p udp -j ACCEPT\nCOMMIT\n', { base: nat.ruleset, noflush: true });
    expect(conditional.ok || conditional.error.message).toBe(true);

    const loop = parseRestore('*filter\n:B - [0:0]\n-A B -j B\n-A INPUT -j DROP\n-A INPUT -j B\nCOMMIT\n');
    expect(loop.ok || loop.error.message).toBe(true);
    if (!loop.ok) return;
    const reached = parseRestore('*filter\n-R INPUT 1 -p tcp -j DROP\nCOMMIT\n', { base: loop.ruleset, noflush: true });
    expect(reached.ok || [reached.error.line, reached.error.word, reached.error.reason]).toEqual([3, 'B', 'Loop found in table (B -> B)']);
    const matched = parseRestore('*filter\n-I INPUT -m comment --comment x -j ACCEPT\n-D INPUT 2\nCOMMIT\n', { base: loop.ruleset, noflush: true });
    expect(matched.ok).toBe(false);
  });

  it('a base ruleset of the other family is refused', () => {
    const r = parseRestore('*filter\nCOMMIT\n', { base: base(), family: 6 });
    expect(r.ok).toBe(false);
  });
});

describe('rules the parser takes and the core cannot run', () => {
  const cases = [
    { text: '*nat\n:K - [0:0]\n-A PREROUTING -j K\n-A K -p tcp -j ACCEPT\n-A K -j QUEUE\nCOMMIT\n', line: 5, word: 'QUEUE', why: 'nat/K rule 2: QUEUE is not supported' },
    { text: '*filter\n-A INPUT -j ACCEPT\nCOMMIT\n*raw\n-I OUTPUT -m conntrack --ctexpire 10 -j ACCEPT\nCOMMIT\n', line: 5, word: '--ctexpire', why: 'raw/OUTPUT rule 1: --ctexpire is not supported' },
    { text: '*filter\n-A INPUT -p tcp -m tcp --tcp-option 2 -j DROP\nCOMMIT\n', line: 2, word: '--tcp-option', why: 'filter/INPUT rule 2: --tcp-option is not supported' },
    { text: '*security\n:INPUT ACCEPT [0:0]\n\n-A INPUT -j ACCEPT\nCOMMIT\n', line: 4, word: '*security', why: 'security/INPUT: the security table is not supported' },
  ];
  for (const c of cases) {
    it(`a RestoreFailed names the line and word (${c.word}); nothing changes`, async () => {
      const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], seed: 1 });
      dp.iptablesRestore(BASE_TEXT);
      const before = dp.iptablesSave();
      let err: unknown;
      try { dp.iptablesRestore(c.text, { noflush: true }); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(RestoreFailed);
      const f = err as RestoreFailed;
      expect([f.line, f.word, f.message]).toEqual([c.line, c.word, `iptables-restore: line ${c.line} failed: ${c.why}`]);
      expect(dp.iptablesSave()).toBe(before);
      dp.iptablesRestore('*filter\n-A KUBE-OLD -j DROP\nCOMMIT\n', { noflush: true });
      expect(dp.iptablesSave()).toContain('-A KUBE-OLD -j DROP');
    });
  }
});
