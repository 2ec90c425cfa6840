// The `svcplane` command line as a user first meets it: every command answers --help (and
// `svcplane help COMMAND`) with its usage and exit code 0; unknown commands and stray arguments
// get the usage on stderr and exit code 2; a reader that hangs up early ends it quietly.
import { describe, it, expect, vi, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../../../host-node/cli/main.js';
import { buildPacket } from '../../../host-node/core/packet.js';
import { freePort, startUserspaceProxy, webManifests } from '../../support/userspace-proxy.js';

const BIN = resolve(import.meta.dirname, '../../../bin/svcplane.js');

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => { out += String(s); return true; });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => { err += String(s); return true; });
  try {
    const code = await main(argv);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('svcplane CLI usage', () => {
  const COMMANDS = ['compile', 'dns', 'replay', 'demo', 'render', 'trace', 'proxy', 'conntrack', 'show'];

  it.each(COMMANDS)('%s --help and help %s print its usage and exit 0', async (cmd) => {
    for (const argv of [[cmd, '--help'], ['help', cmd]]) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(0);
      expect(r.out + r.err, argv.join(' ')).toMatch(new RegExp(`usage: svcplane ${cmd}\\b`));
    }
  });

  it('no command prints the command list and exits 2; help alone exits 0; an unknown command names itself', async () => {
    const none = await run();
    expect(none.code).toBe(2);
    expect(none.out).toContain('commands:');
    expect((await run('help')).code).toBe(0);
    const bad = await run('serve');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/unknown command "serve"/);
    expect((await run('help', 'serve')).code).toBe(2);
  });

  it('demo takes no arguments: a stray one is refused before anything runs', async () => {
    const r = await run('demo', '--verbose');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/svcplane demo: unexpected "--verbose"/);
    expect(r.out).toBe('');
  });

  it('stops quietly when its reader hangs up early (svcplane render … | head): no write error, exit code 0', async () => {
    // 6,000 Services without endpoints (~0.8 MB of rules): far more than a pipe holds, so the
    // command is still writing when the reader goes away.
    const dir = mkdtempSync(join(tmpdir(), 'svp-epipe-'));
    try {
      writeFileSync(join(dir, 'svc.yaml'), Array.from({ length: 6000 }, (_, i) =>
        `apiVersion: v1\nkind: Service\nmetadata: { name: s${i}, namespace: default }\nspec:\n  clusterIP: 198.18.${i >> 8}.${i & 255}\n  ports: [{ name: http, port: 80, protocol: TCP }]`).join('\n---\n'));
      const child = spawn(process.execPath, [BIN, 'render', '--manifests', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      const closed = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
      const first = await new Promise<Buffer>((got) => child.stdout.once('data', got));
      expect(first.toString()).toMatch(/^# IPv4|^\*filter/);
      child.stdout.destroy();
      expect(await closed).toBe(0);
      expect(err).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('compile refuses a conntrack table larger than the core holds at once (it used to loop for ever)', async () => {
    // In a process of its own with a deadline: a loop would hold a test worker for good.
    const dir = mkdtempSync(join(tmpdir(), 'svp-capacity-'));
    try {
      writeFileSync(join(dir, 'rules.txt'), '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n');
      const child = spawn(process.execPath, [BIN, 'compile', '--rules', join(dir, 'rules.txt'), '-o', join(dir, 'out.svp'), '--conntrack-capacity', '3000000000'],
        { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
      let err = '';
      child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
      expect(code).toBe(2);
      expect(err).toMatch(/^svcplane compile: conntrackCapacity 3000000000: a whole number of flows from 1 to 16777216\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('render refuses a family other than 4 or 6 and a scheduler IPVS does not have', async () => {
    const fam = await run('render', '--manifests', '/nonexistent', '--family', '5');
    expect(fam.code).toBe(2);
    expect(fam.err).toMatch(/--family must be 4 or 6, not "5"/);
    const sched = await run('render', '--manifests', '/nonexistent', '--mode', 'ipvs', '--ipvs-scheduler', 'fastest');
    expect(sched.code).toBe(2);
    expect(sched.err).toMatch(/unknown --ipvs-scheduler "fastest" \(one of rr, wrr/);
  });

  it('a command line node:util refuses is a usage error of that command, as its own checks are (exit 2)', async () => {
    for (const [argv, message] of [
      [['render', '--manifests', '/m', '--manifest', 'x'], "Unknown option '--manifest'"],
      [['render', '--manifests', '/m', 'stray'], "Unexpected argument 'stray'"],
      [['dns', '--manifests'], "Option '--manifests <value>' argument missing"],
    ] as const) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toContain(`svcplane ${argv[0]}: ${message}`);
      expect(r.err, argv.join(' ')).toMatch(new RegExp(`usage: svcplane ${argv[0]}\\b`));
    }
  });

  it('a file that cannot be read or written is named with the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-files-'));
    try {
      const missing = join(dir, 'missing');
      const render = await run('render', '--manifests', missing);
      expect(render.code).toBe(1);
      expect(render.err).toBe(`svcplane render: ${missing}: no such file or directory\n`);
      writeFileSync(join(dir, 'rules.txt'), '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n');
      const out = join(missing, 'out.svp');
      const write = await run('compile', '--rules', join(dir, 'rules.txt'), '-o', out);
      expect(write.err).toBe(`svcplane compile: ${out}: no such file or directory\n`);
      const read = await run('compile', '--ipvsadm', join(dir, 'rules.txt'), '--ipset', missing, '-o', join(dir, 'out.svp'));
      expect(read.err).toBe(`svcplane compile: ${missing}: no such file or directory\n`);
      expect(read.code).toBe(1);
      // A fault in the --ipset file is that file's, not the --ipvsadm file's.
      writeFileSync(join(dir, 'ipvsadm.txt'), '-A -t 198.18.96.1:80 -s rr\n');
      writeFileSync(join(dir, 'ipset.txt'), 'create S hash:ip family inet\nadd S 198.18.0.1.5\n');
      const bad = await run('compile', '--ipvsadm', join(dir, 'ipvsadm.txt'), '--ipset', join(dir, 'ipset.txt'), '-o', join(dir, 'out.svp'));
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(new RegExp(`^svcplane compile: ${join(dir, 'ipset.txt').replace(/[.]/g, '\\.')}: .*line 2`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('svcplane conntrack -E', () => {
  it('listens to a running proxy until interrupted (SIGINT), then says how many events it showed and exits 0', async () => {
    const port = await freePort();
    const p = await startUserspaceProxy({ 'web.yaml': webManifests(['198.18.100.2']) }, ['--node-ip', '198.18.200.1', '--metrics-bind-address', `127.0.0.1:${port}`], { tmpPrefix: 'svp-cli-events-' });
    const child = spawn(process.execPath, [BIN, 'conntrack', '--proxy', `127.0.0.1:${port}`, '-E', '-p', 'udp'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '', err = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { err += d; });
      const listening = () => (p.proxy as unknown as { ctEvents: { size: number } }).ctEvents.size === 1;
      for (const end = Date.now() + 10_000; !listening() && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
      p.proxy.dp.process(buildPacket({ src: '198.18.50.1', dst: '198.18.7.7', proto: 'udp', sport: 7000, dport: 53 }), p.proxy.clock());
      for (const end = Date.now() + 5000; !out.includes('[NEW]') && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
      child.kill('SIGINT');
      const code = await new Promise((r) => child.on('exit', r));
      expect([code, out, err]).toEqual([0,
        '    [NEW] udp      17 30 src=198.18.50.1 dst=198.18.7.7 sport=7000 dport=53 [UNREPLIED] src=198.18.7.7 dst=198.18.50.1 sport=53 dport=7000\n',
        'svcplane conntrack: 1 flow events have been shown.\n']);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await p.stop();
    }
  }, 30_000);
});

