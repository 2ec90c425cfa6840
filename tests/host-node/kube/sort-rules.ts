// sort-rules.ts — test helper: puts iptables-restore text in the canonical order kube-proxy's own
// unit tests compare in (proxier_test.go sortIPTablesRules over pkg/util/iptables/testing/parse.go
// ParseIPTablesDump / IPTablesDump.String). kube-proxy walks Services in Go map order, so its
// tests sort both sides this way; the conformance corpus stores expected text in this order.
// Tables by name; chains KUBE-NODEPORTS, KUBE-SERVICES, then KUBE-* alphabetically, then others;
// KUBE-NODEPORTS and KUBE-SERVICES rules stably by the service name in their comment (the "must be
// the last rule" jump stays last); rules, then "-X" lines, per table.

interface Chain { name: string; declared: string; rules: string[]; deleted: boolean }
interface Table { name: string; chains: Chain[] }

// parse.go wordRegex: a double-quoted string or an unquoted word.
const WORD = /(?:^|\s)("[^"]*"|[^"]\S*)/g;

function commentOf(rule: string): string | null {
  const words = [...rule.matchAll(WORD)].map((m) => m[1]!.replace(/^"+|"+$/g, ''));
  for (let i = 0; i < words.length - 1; i++) if (words[i] === '--comment') return words[i + 1]!;
  return null;
}

/** orderByCommentServiceName: compares the comment text up to the first space or colon. */
function serviceLess(a: string, b: string): boolean {
  const ca = commentOf(a);
  const cb = commentOf(b);
  if (ca === null || cb === null) return false;
  const cut = (s: string): string => {
    const i = s.search(/[ :]/);
    return i === -1 ? s : s.slice(0, i);
  };
  return cut(ca) < cut(cb);
}

function stableSort<T>(xs: T[], less: (a: T, b: T) => boolean): T[] {
  return xs
    .map((x, i) => ({ x, i }))
    .sort((p, q) => (less(p.x, q.x) ? -1 : less(q.x, p.x) ? 1 : p.i - q.i))
    .map((p) => p.x);
}

export function parseDump(text: string): Table[] {
  const tables: Table[] = [];
  let t: Table | null = null;
  let declaring = false;
  for (const raw of text.replace(/^\n+|\n+$/g, '').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!t) {
      if (!line.startsWith('*')) throw new Error(`table starts with ${JSON.stringify(line)}`);
      t = { name: line.slice(1), chains: [] };
      tables.push(t);
      declaring = true;
      continue;
    }
    const decl = /^:([^ ]*) - \[([0-9]*):([0-9]*)\]$/.exec(line);
    if (declaring && decl) {
      t.chains.push({ name: decl[1]!, declared: line, rules: [], deleted: false });
      continue;
    }
    declaring = false;
    const add = /^-A ([^ ]*) (.*)$/.exec(line);
    const del = /^-X (.*)$/.exec(line);
    if (add) {
      const c = t.chains.find((x) => x.name === add[1]);
      if (!c) throw new Error(`rule for undeclared chain: ${line}`);
      if (c.deleted) throw new Error(`rule for deleted chain: ${line}`);
      c.rules.push(line);
    } else if (del) {
      const c = t.chains.find((x) => x.name === del[1]);
      if (!c) throw new Error(`-X of undeclared chain: ${line}`);
      if (c.rules.length) throw new Error(`-X after rules: ${line}`);
      c.deleted = true;
    } else if (line === 'COMMIT') {
      t = null;
    } else {
      throw new Error(`bad line ${JSON.stringify(line)}`);
    }
  }
  if (t) throw new Error('no COMMIT line');
  return tables;
}

const chainRank = (n: string): number => (n === 'KUBE-NODEPORTS' ? 0 : n === 'KUBE-SERVICES' ? 1 : n.startsWith('KUBE-') ? 2 : 3);

export function sortRestoreText(text: string): string {
  const tables = parseDump(text).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const t of tables) {
    t.chains.sort((a, b) => chainRank(a.name) - chainRank(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const c of t.chains) {
      if (c.name === 'KUBE-NODEPORTS' || (c.name === 'KUBE-SERVICES' && t.name === 'filter')) {
        c.rules = stableSort(c.rules, serviceLess);
      } else if (c.name === 'KUBE-SERVICES' && t.name === 'nat') {
        const last = (r: string): boolean => (commentOf(r) ?? '').includes('must be the last rule');
        c.rules = stableSort(c.rules, (a, b) => (last(a) ? false : last(b) ? true : serviceLess(a, b)));
      }
    }
  }
  let out = '';
  for (const t of tables) {
    out += `*${t.name}\n`;
    for (const c of t.chains) out += `${c.declared.replace(/\[.*\]$/, '[0:0]')}\n`;
    for (const c of t.chains) for (const r of c.rules) out += `${r}\n`;
    for (const c of t.chains) if (c.deleted) out += `-X ${c.name}\n`;
    out += 'COMMIT\n';
  }
  return out;
}
