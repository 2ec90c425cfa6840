// `svcplane proxy --write-config-to FILE` (kube-proxy's): the settings written as a config file that
// reads back to them, and nothing started. `svcplane proxy`'s oom_score_adj, kube-proxy's ApplyOOMScoreAdj: the value written to the
// process's file, and a refusal (no CAP_SYS_RESOURCE, no such file) said once and survived.
// A real `svcplane proxy` (userspace mode: no root, loopback) raises its own to what it is told
// (raising needs no privilege; lowering, checked in tests/e2e/proxy.test.ts, needs CAP_SYS_RESOURCE).
import { describe, it, expect } from 'vitest';
import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyOomScoreAdj, runProxy, watchConfigFile, PROXY_HELP } from '../../../host-node/cli/proxy.js';
import { parseProxyArgs, readConfigFile, PROXY_FLAGS, IGNORED_VALUE_FLAGS, IGNORED_BOOL_FLAGS } from '../../../host-node/io/proxy-config.js';
import { startProxyProcess } from '../../support/proxy-process.js';

describe('svcplane proxy: oom_score_adj', () => {
  it('defaults to kube-proxy\'s -999; --oom-score-adj / oomScoreAdj set it within [-1000, 1000]', () => {
    expect(parseProxyArgs(['--manifests', '/m']).oomScoreAdj).toBe(-999);
    expect(parseProxyArgs(['--manifests', '/m', '--oom-score-adj=-500']).oomScoreAdj).toBe(-500);
    expect(readConfigFile('/x.yaml', 'manifests: /m\noomScoreAdj: 0\n').oomScoreAdj).toBe(0);
    expect(readConfigFile('/x.yaml', 'manifests: /m\noomScoreAdj: null\n').oomScoreAdj).toBe(-999);
    expect(() => parseProxyArgs(['--manifests', '/m', '--oom-score-adj', '1001'])).toThrow('--oom-score-adj: must be within the range [-1000, 1000], got 1001');
    expect(() => readConfigFile('/x.yaml', 'oomScoreAdj: low\n')).toThrow('/x.yaml:1: oomScoreAdj: expected a number');
  });

  it('writes the value, and says so and goes on when it is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-oom-'));
    try {
      const file = join(dir, 'oom_score_adj');
      writeFileSync(file, '0');
      const logs: string[] = [];
      expect(applyOomScoreAdj(-999, (l) => logs.push(l), file)).toBe(true);
      expect(readFileSync(file, 'utf8')).toBe('-999');
      expect(logs).toEqual([]);
      expect(applyOomScoreAdj(-999, (l) => logs.push(l), join(dir, 'gone', 'oom_score_adj'))).toBe(false);
      expect(logs).toEqual(['proxy: oom_score_adj left as it is, -999 refused (ENOENT)']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a running proxy has the value it was given (and says which kube-proxy flags change nothing)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-oom-'));
    const p = await startProxyProcess(['--mode', 'userspace', '--manifests', dir, '--userspace-ports', 'range', '--hostname-override', 'n1',
      '--metrics-bind-address', '', '--healthz-bind-address', '', '--oom-score-adj', '500', '--v=2']).catch((e) => { rmSync(dir, { recursive: true, force: true }); throw e; });
    try {
      expect(readFileSync(`/proc/${p.child.pid}/oom_score_adj`, 'utf8').trim()).toBe('500');
      expect(p.out()).not.toContain('oom_score_adj left');
      expect(p.out()).toContain('proxy: kube-proxy settings with no effect here: --v=2\n');
    } finally {
      await p.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('svcplane proxy --write-config-to', () => {
  it('writes the settings (file and flags together) as a config file that reads back to them, and starts nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-wcfg-'));
    try {
      const file = join(dir, 'out.yaml');
      const given = join(dir, 'in.yaml');
      writeFileSync(given, 'manifests: /m\niptables:\n  minSyncPeriod: 5s\nconntrack:\n  tcpEstablishedTimeout: 2h\n');
      const said: string[] = [];
      const argv = ['--config', given, '--write-config-to', file, '--oom-score-adj=-5', '--tun', 'svc9'];
      expect(await runProxy(argv, (l) => said.push(l), (l) => said.push(l))).toBe(0);
      expect(said).toEqual([`proxy: settings written to ${file}\n`]);
      const back = parseProxyArgs(['--config', file]);
      expect(back).toEqual(parseProxyArgs(['--config', given, '--oom-score-adj=-5', '--tun', 'svc9']));
      expect(back).toMatchObject({ minSyncPeriodMs: 5000, conntrackTCPEstablishedMs: 7_200_000, tun: 'svc9', oomScoreAdj: -5 });
      // Bad settings are refused before anything is written; a file that cannot be written says why.
      const errs: string[] = [];
      expect(await runProxy(['--manifests', '/m', `--write-config-to=${join(dir, 'bad.yaml')}`, '--iptables-masquerade-bit', '40'], () => {}, (l) => errs.push(l))).toBe(2);
      expect(errs[0]).toMatch(/^svcplane proxy: --iptables-masquerade-bit: must be in the range \[0, 31\], got 40/);
      expect(await runProxy(['--manifests', '/m', '--write-config-to', join(dir, 'no', 'such.yaml')], () => {}, (l) => errs.push(l))).toBe(1);
      expect(errs.at(-1)).toBe(`svcplane proxy: --write-config-to ${join(dir, 'no', 'such.yaml')}: ENOENT\n`);
      expect(await runProxy(['--manifests', '/m', '--write-config-to'], () => {}, (l) => errs.push(l))).toBe(2);
      expect(errs.at(-1)).toMatch(/^svcplane proxy: --write-config-to: a file is needed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('svcplane proxy flags', () => {
  it('are each in the usage text and in docs/proxy.md, the kube-proxy ones it ignores too', () => {
    const docs = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'proxy.md'), 'utf8');
    const flags = Object.keys(PROXY_FLAGS);
    expect(flags.length).toBeGreaterThan(40);
    for (const f of flags) {
      expect(PROXY_HELP, f).toMatch(new RegExp(`--${f}\\b`));
      expect(docs, f).toMatch(new RegExp(`--${f}\\b`));
    }
    // The kube-proxy flags taken without effect that the docs name (the logging ones as a group).
    for (const f of ['v', 'feature-gates', 'profiling', 'config-sync-period', 'ipvs-strict-arp', 'ipvs-exclude-cidrs', 'iptables-localhost-nodeports']) {
      expect(IGNORED_VALUE_FLAGS.has(f) || IGNORED_BOOL_FLAGS.has(f), f).toBe(true);
      expect(docs, f).toMatch(new RegExp(`--${f}\\b`));
    }
  });
});

describe('svcplane proxy: its config file changing', () => {
  it('is noticed by content, not by a moment without the file or the same text written again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfgwatch-'));
    const file = join(dir, 'config.conf');
    writeFileSync(file, 'mode: iptables\n');
    let changed = 0;
    const w = watchConfigFile(file, () => changed++, 20);
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 120));
    try {
      unlinkSync(file);
      await settle();
      writeFileSync(join(dir, 'new'), 'mode: iptables\n');
      renameSync(join(dir, 'new'), file);
      await settle();
      expect(changed).toBe(0);
      appendFileSync(file, '# edited\n');
      await settle();
      appendFileSync(file, '# again\n');
      await settle();
      expect(changed).toBe(1);
    } finally {
      w.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops a running proxy, which exits 1 for its supervisor to start it with the new settings (as kube-proxy does)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfgwatch-'));
    const file = join(dir, 'config.conf');
    writeFileSync(file, `mode: userspace\nmanifests: ${dir}\nuserspacePorts: range\nhostnameOverride: n1\nmetricsServer: false\nhealthzServer: false\n`);
    const p = await startProxyProcess(['--config', file]).catch((e) => { rmSync(dir, { recursive: true, force: true }); throw e; });
    try {
      const exited = new Promise<number | null>((resolve) => p.child.once('exit', (code) => resolve(code)));
      appendFileSync(file, 'iptables: {minSyncPeriod: 5s}\n');
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
      expect(code, p.out()).toBe(1);
      expect(p.out()).toContain(`svcplane proxy: its config file ${file} changed; stopping so it can be started again\n`);
      expect(p.out()).toContain('proxy: stopped (so it can be started again)\n');
    } finally {
      await p.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

