// tests/support/netns.ts: namespaces and links are made only inside namespaces the scope owns,
// commands and helpers run inside them, and everything goes away on destroy(), on a failed setup,
// at process exit and on SIGTERM — while the root namespace's links stay exactly as they were.
import { describe, it, expect } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NetnsScope, netnsSupport } from '../support/netns';

const support = netnsSupport();
if (!support.ok) console.warn(`tests/kernel/netns: SKIPPED — ${support.reason}`);

const exists = (name: string): boolean => existsSync(`/run/netns/${name}`);
const rootLinks = (): string => spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout.replace(/\s+state \S+.*$/gm, '');
const DIST_NETNS = fileURLToPath(new URL('../../dist/tests/support/netns.js', import.meta.url));

/** Runs a node child that creates one namespace through the compiled library and prints its name. */
function child(body: string): { proc: ReturnType<typeof spawn>; name: Promise<string> } {
  if (!existsSync(DIST_NETNS)) throw new Error(`${DIST_NETNS} is missing: run node scripts/build.mjs first (npm test does)`);
  const src = `import { NetnsScope } from ${JSON.stringify(DIST_NETNS)};
const s = new NetnsScope('exit'); const ns = s.create('a'); console.log(ns.name); ${body}`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', src], { stdio: ['ignore', 'pipe', 'pipe'] });
  const name = new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('\n')) resolve(out.trim()); });
    proc.on('exit', () => reject(new Error(`child exited before naming its namespace: ${out}`)));
  });
  return { proc, name };
}

const exited = (proc: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
  new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));

describe.skipIf(!support.ok)('netns scope', () => {
  it('creates namespaces and a veth pair between them, runs commands inside, and removes it all', () => {
    const before = rootLinks();
    const s = new NetnsScope('t');
    const a = s.create('a');
    const b = s.create('b');
    expect(a.name).toMatch(new RegExp(`^svp-${process.pid}-t-\\d+-a$`));
    s.veth(a, 'va', b, 'vb', { a: '02:00:00:00:0a:01', b: '02:00:00:00:0a:02' });
    s.ip(a, ['addr', 'add', '198.18.250.1/30', 'dev', 'va']);
    s.ip(b, ['addr', 'add', '198.18.250.2/30', 'dev', 'vb']);
    expect(s.must(a, ['ip', '-o', 'link', 'show', 'va'])).toContain('02:00:00:00:0a:01');
    // The peer really is in b, and the two ends talk.
    expect(s.exec(a, ['ip', 'link', 'show', 'vb']).code).not.toBe(0);
    // A TCP connect from b to a closed port on a is refused by a's stack (111 = ECONNREFUSED): the link works.
    const probe = "import socket; s = socket.socket(); s.settimeout(2); print(s.connect_ex(('198.18.250.1', 9)))";
    expect(s.must(b, ['python3', '-c', probe]).trim()).toBe('111');
    expect(rootLinks()).toBe(before);
    s.destroy();
    expect(exists(a.name)).toBe(false);
    expect(exists(b.name)).toBe(false);
    expect(rootLinks()).toBe(before);
    expect(() => s.create('c')).toThrow(/destroyed/);
  });

  it('refuses namespaces it does not own and bad names', () => {
    const s = new NetnsScope('t');
    const other = new NetnsScope('t');
    try {
      const mine = other.create('x');
      expect(() => s.ip(mine, ['link'])).toThrow(/does not belong/);
      expect(() => s.create('Bad Name')).toThrow(/lower-case/);
      expect(() => new NetnsScope('no-dash')).toThrow(/tag/);
    } finally {
      s.destroy();
      other.destroy();
    }
  });

  it('a line agent answers in order, reports errors, and dies with the scope', async () => {
    const s = new NetnsScope('t');
    const ns = s.create('a');
    const agent = s.agent(ns, ['python3', '-u', '-c', String.raw`
import sys, json
for line in sys.stdin:
    m = json.loads(line)
    if m.get("fail"): print(json.dumps({"error": "asked to fail"}), flush=True)
    else: print(json.dumps({"echo": m["n"], "links": open("/proc/net/dev").read().count(":")}), flush=True)
`]);
    const replies = await Promise.all([1, 2, 3].map((n) => agent.call<{ echo: number; links: number }>({ n })));
    expect(replies.map((r) => r.echo)).toEqual([1, 2, 3]);
    expect(replies[0]!.links).toBe(1);   // only lo: it runs inside the fresh namespace
    await expect(agent.call({ fail: true })).rejects.toThrow(/asked to fail/);
    const pid = agent.pid!;
    s.destroy();
    await expect(agent.call({ n: 4 })).rejects.toThrow(/stopped/);
    await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(spawnSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }).stdout)).toBe(false);
    expect(exists(ns.name)).toBe(false);
  });

  it('a process that exits without destroy() leaves no namespace behind', async () => {
    const c = child('process.exit(3);');
    const name = await c.name;
    expect((await exited(c.proc)).code).toBe(3);
    expect(exists(name)).toBe(false);
  });

  it('SIGTERM removes the namespaces, then the process still dies of the signal', async () => {
    const c = child('setInterval(() => {}, 1000);');
    const name = await c.name;
    expect(exists(name)).toBe(true);
    c.proc.kill('SIGTERM');
    expect((await exited(c.proc)).signal).toBe('SIGTERM');
    expect(exists(name)).toBe(false);
  });
});
