// `svcplane proxy` settings: flags, the KubeProxyConfiguration-style file, defaults, and errors that
// name the flag or the file, line and field.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseProxyArgs, readConfigFile, validate, coreMode, conntrackTableSize, ignoredSettings, ConfigError, CONNTRACK_TABLE_DEFAULT } from '../../../host-node/io/proxy-config.js';
import { configFile, goDuration } from '../../../host-node/io/proxy-configz.js';
import { healthCheckAddresses, nodePortAddresses } from '../../../host-node/io/node-proxy.js';
import { YAML_MAX_DEPTH } from '../../../host-node/kube/yaml-depth.js';

describe('proxy config file nested too deep', () => {
  it('is refused with file and line before the YAML parser reads it, every time', () => {
    for (let round = 0; round < 2; round++) {
      expect(() => readConfigFile('/etc/svcplane.yaml', `mode: iptables\nclusterCIDR: ${'['.repeat(5000)}\n`))
        .toThrow(`/etc/svcplane.yaml:2: nested more than ${YAML_MAX_DEPTH} levels deep: not read`);
      // Nested on one line in a way only the parser's own tree shows.
      expect(() => readConfigFile('/etc/svcplane.yaml', `mode: iptables\nclusterCIDR: ${'? '.repeat(5000)}x\n`))
        .toThrow(`/etc/svcplane.yaml:2: nested more than ${YAML_MAX_DEPTH} levels deep: not read`);
    }
  });
});

describe('proxy flags', () => {
  it('has kube-proxy\'s defaults', () => {
    const c = parseProxyArgs(['--manifests', '/m', '--hostname-override', 'n1']);
    expect(c.mode).toBe('iptables');
    expect(c.metricsBindAddress).toBe('127.0.0.1:10249');
    expect(c.healthzBindAddress).toBe('0.0.0.0:10256');
    expect(c.nodePortRange).toEqual([30000, 32767]);
    expect(c.serviceCIDRs).toEqual(['10.96.0.0/12']);
    // The masquerade source defaults to the last usable address of the service CIDR.
    expect(c.masqueradeAddresses).toEqual(['10.111.255.254']);
    expect(c.nodeName).toBe('n1');
    expect(c.minSyncPeriodMs).toBe(1000);
  });

  it('takes kube-proxy\'s --min-sync-period / minSyncPeriod (0 allowed, never negative)', () => {
    expect(parseProxyArgs(['--manifests', '/m', '--min-sync-period', '250ms']).minSyncPeriodMs).toBe(250);
    expect(parseProxyArgs(['--manifests', '/m', '--min-sync-period', '0']).minSyncPeriodMs).toBe(0);
    expect(readConfigFile('/x.yaml', 'manifests: /m\nminSyncPeriod: 2s\n').minSyncPeriodMs).toBe(2000);
    expect(() => parseProxyArgs(['--manifests', '/m', '--min-sync-period=-1s'])).toThrow(/--min-sync-period: expected a duration/);
    expect(() => readConfigFile('/x.yaml', 'minSyncPeriod: 3\n')).toThrow(/x.yaml:1: minSyncPeriod: expected a string/);
  });

  it('refuses a period or timeout longer than a timer can wait (Node would run it after 1 ms), from a flag or the file', () => {
    expect(parseProxyArgs(['--manifests', '/m', '--sync-period', '596h']).syncPeriodMs).toBe(596 * 3_600_000);
    for (const flag of ['--sync-period', '--min-sync-period', '--udp-timeout', '--conntrack-checkpoint-period']) {
      expect(() => parseProxyArgs(['--manifests', '/m', flag, '1000h'])).toThrow(`${flag}: must be at most 596h31m23.647s (the longest a timer waits), got 1000h`);
    }
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
    try {
      const p = join(dir, 'proxy.yaml');
      writeFileSync(p, 'manifests: /m\nsyncPeriod: 99999999999999999999h\n');
      expect(() => parseProxyArgs(['--config', p])).toThrow(`${p}:2: syncPeriod: must be at most 596h31m23.647s (the longest a timer waits)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads integer flags as kube-proxy\'s Int32 flags do: empty, fractional or exponent text is refused, 0x… / 0o… / 0b… taken', () => {
    const c = (flag: string, value: string) => parseProxyArgs(['--manifests', '/m', `${flag}=${value}`]);
    expect(c('--oom-score-adj', '-500').oomScoreAdj).toBe(-500);
    expect(c('--iptables-masquerade-bit', '0x10').masqueradeBit).toBe(16);
    expect(c('--iptables-masquerade-bit', '0o17').masqueradeBit).toBe(15);
    expect(c('--conntrack-min', '1_000').conntrackMin).toBe(1000);
    for (const bad of ['', ' ', '1e3', '1.5', '12abc', '0x', '_1']) {
      expect(() => c('--oom-score-adj', bad)).toThrow(`--oom-score-adj: expected an integer, got ${JSON.stringify(bad)}`);
    }
    expect(() => c('--conntrack-max-per-core', '4294967296')).toThrow('--conntrack-max-per-core: "4294967296" is out of range for a 32-bit integer');
  });

  it('names a key that only an object\'s prototype has (constructor, __proto__, toString) an unknown field', () => {
    for (const key of ['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty']) {
      expect(() => readConfigFile('/x.yaml', `manifests: /m\n${key}: 1\n`), key).toThrow(`/x.yaml:2: ${key}: unknown field`);
    }
  });

  it('takes kube-proxy\'s per-mode sync periods: the running mode\'s (ipvs.* in ipvs mode, iptables.* otherwise), svcplane\'s plain ones winning', () => {
    const file = 'manifests: /m\nmode: iptables\niptables:\n  minSyncPeriod: 10s\n  syncPeriod: 1m\nipvs:\n  minSyncPeriod: 0s\n';
    expect(readConfigFile('/x.yaml', file)).toMatchObject({ minSyncPeriodMs: 10_000, syncPeriodMs: 60_000 });
    // ipvs mode: ipvs.minSyncPeriod 0 is 0; ipvs.syncPeriod not given is kube-proxy's 30 s.
    expect(readConfigFile('/x.yaml', file.replace('mode: iptables', 'mode: ipvs'))).toMatchObject({ minSyncPeriodMs: 0, syncPeriodMs: 30_000 });
    // kube-proxy's defaulting reads iptables.minSyncPeriod 0 as unset: 1 s.
    expect(readConfigFile('/x.yaml', 'manifests: /m\niptables: {minSyncPeriod: 0s, syncPeriod: 0s}\n')).toMatchObject({ minSyncPeriodMs: 1000, syncPeriodMs: 30_000 });
    // svcplane's own top-level field wins.
    expect(readConfigFile('/x.yaml', `${file}minSyncPeriod: 2s\n`)).toMatchObject({ minSyncPeriodMs: 2000, syncPeriodMs: 60_000 });
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
    try {
      const p = join(dir, 'proxy.yaml');
      writeFileSync(p, file);
      expect(parseProxyArgs(['--config', p])).toMatchObject({ minSyncPeriodMs: 10_000, syncPeriodMs: 60_000 });
      // --mode ipvs on the command line takes the file's ipvs section.
      expect(parseProxyArgs(['--config', p, '--mode', 'ipvs'])).toMatchObject({ minSyncPeriodMs: 0, syncPeriodMs: 30_000 });
      expect(parseProxyArgs(['--config', p, '--mode', 'userspace', '--userspace-core', 'ipvs'])).toMatchObject({ minSyncPeriodMs: 0 });
      // The mode's flag over the file, the plain flag over both.
      expect(parseProxyArgs(['--config', p, '--iptables-min-sync-period', '3s'])).toMatchObject({ minSyncPeriodMs: 3000, syncPeriodMs: 60_000 });
      expect(parseProxyArgs(['--config', p, '--iptables-min-sync-period', '3s', '--min-sync-period', '4s']).minSyncPeriodMs).toBe(4000);
      expect(parseProxyArgs(['--config', p, '--ipvs-min-sync-period', '3s']).minSyncPeriodMs).toBe(10_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(parseProxyArgs(['--manifests', '/m', '--mode', 'ipvs', '--ipvs-sync-period', '45s', '--iptables-sync-period', '5s']).syncPeriodMs).toBe(45_000);
    expect(parseProxyArgs(['--manifests', '/m', '--iptables-min-sync-period', '0']).minSyncPeriodMs).toBe(0);
    expect(() => parseProxyArgs(['--manifests', '/m', '--ipvs-sync-period', '0'])).toThrow('--ipvs-sync-period: must be greater than 0');
    expect(() => readConfigFile('/x.yaml', 'iptables:\n  minSyncPeriod: soon\n')).toThrow('/x.yaml:2: iptables.minSyncPeriod: expected a duration such as 250ms or 2s, got "soon"');
  });

  it('takes kube-proxy\'s --iptables-masquerade-bit / iptables.masqueradeBit (default 14, 0-31)', () => {
    expect(parseProxyArgs(['--manifests', '/m']).masqueradeBit).toBe(14);
    expect(parseProxyArgs(['--manifests', '/m', '--iptables-masquerade-bit', '0']).masqueradeBit).toBe(0);
    expect(readConfigFile('/x.yaml', 'manifests: /m\niptables:\n  masqueradeBit: 31\n').masqueradeBit).toBe(31);
    expect(readConfigFile('/x.yaml', 'manifests: /m\niptables:\n  masqueradeBit: null\n').masqueradeBit).toBe(14);
    expect(() => parseProxyArgs(['--manifests', '/m', '--iptables-masquerade-bit', '32'])).toThrow('--iptables-masquerade-bit: must be in the range [0, 31], got 32');
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
    try {
      const p = join(dir, 'proxy.yaml');
      writeFileSync(p, 'manifests: /m\niptables:\n  masqueradeBit: 1.5\n');
      expect(() => parseProxyArgs(['--config', p])).toThrow(`${p}:3: iptables.masqueradeBit: must be in the range [0, 31], got 1.5`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes kube-proxy\'s --detect-local-mode / detectLocalMode: ClusterCIDR (default, "" too) or NodeCIDR; the interface modes are refused', () => {
    expect(parseProxyArgs(['--manifests', '/m']).detectLocalMode).toBe('ClusterCIDR');
    expect(parseProxyArgs(['--manifests', '/m', '--detect-local-mode', 'NodeCIDR']).detectLocalMode).toBe('NodeCIDR');
    expect(parseProxyArgs(['--manifests', '/m', '--detect-local-mode', '']).detectLocalMode).toBe('ClusterCIDR');
    expect(readConfigFile('/x.yaml', 'manifests: /m\ndetectLocalMode: NodeCIDR\ndetectLocal: {bridgeInterface: cbr0}\n').detectLocalMode).toBe('NodeCIDR');
    expect(() => parseProxyArgs(['--manifests', '/m', '--detect-local-mode', 'BridgeInterface']))
      .toThrow('--detect-local-mode: BridgeInterface cannot tell pods here: every packet reaches this proxy through its TUN device (or a local socket)');
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
    try {
      const p = join(dir, 'proxy.yaml');
      writeFileSync(p, 'manifests: /m\ndetectLocalMode: InterfaceNamePrefix\ndetectLocal: {interfaceNamePrefix: veth}\n');
      expect(() => parseProxyArgs(['--config', p])).toThrow(`${p}:2: detectLocalMode: InterfaceNamePrefix cannot tell pods here`);
      expect(parseProxyArgs(['--config', p, '--detect-local-mode', 'NodeCIDR']).detectLocalMode).toBe('NodeCIDR');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => parseProxyArgs(['--manifests', '/m', '--detect-local-mode', 'nodecidr'])).toThrow('--detect-local-mode: expected ClusterCIDR or NodeCIDR, got "nodecidr"');
  });

  it('prints durations as Go\'s time.Duration does (for /configz), and reads them back', () => {
    const cases: Array<[number, string]> = [[0, '0s'], [250, '250ms'], [1000, '1s'], [1500, '1.5s'], [62_500, '1m2.5s'], [90_000, '1m30s'], [3_600_000, '1h0m0s'], [86_400_000, '24h0m0s'], [90_061_000, '25h1m1s']];
    for (const [ms, text] of cases) {
      expect(goDuration(ms)).toBe(text);
      expect(parseProxyArgs(['--manifests', '/m', '--min-sync-period', text]).minSyncPeriodMs).toBe(ms);
    }
  });

  it('takes kube-proxy\'s --bind-address / bindAddress as the node IPs (its node IP override); 0.0.0.0 and :: leave them detected; --node-ip / nodeIP win', () => {
    expect(parseProxyArgs(['--manifests', '/m', '--bind-address', '198.18.0.5']).nodeIPs).toEqual(['198.18.0.5']);
    expect(parseProxyArgs(['--manifests', '/m', '--bind-address', '198.18.0.5,fd00::5']).nodeIPs).toEqual(['198.18.0.5', 'fd00::5']);
    expect(parseProxyArgs(['--manifests', '/m', '--bind-address', '0.0.0.0']).nodeIPs).toEqual([]);
    expect(parseProxyArgs(['--manifests', '/m', '--bind-address', '198.18.0.5', '--node-ip', '198.18.0.6']).nodeIPs).toEqual(['198.18.0.6']);
    expect(readConfigFile('/x.yaml', 'manifests: /m\nbindAddress: 198.18.0.5\n').nodeIPs).toEqual(['198.18.0.5']);
    expect(readConfigFile('/x.yaml', 'manifests: /m\nbindAddress: "::"\n').nodeIPs).toEqual([]);
    expect(readConfigFile('/x.yaml', 'manifests: /m\nnodeIP: [198.18.0.6]\nbindAddress: 198.18.0.5\n').nodeIPs).toEqual(['198.18.0.6']);
    expect(readConfigFile('/x.yaml', 'manifests: /m\nbindAddress: 198.18.0.5\nnodeIP: [198.18.0.6]\n').nodeIPs).toEqual(['198.18.0.6']);
    expect(() => parseProxyArgs(['--manifests', '/m', '--bind-address', 'node1'])).toThrow('--bind-address: not an IP address: "node1"');
    expect(() => readConfigFile('/x.yaml', 'manifests: /m\nbindAddress: here\n')).toThrow('/x.yaml:2: bindAddress: not an IP address: "here"');
  });

  it('writes its settings as a config file that reads back to the same settings (--write-config-to)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
    try {
      const file = join(dir, 'written.yaml');
      const cases: string[][] = [
        ['--manifests', '/m'],
        ['--kubeconfig', '/k', '--master', 'https://198.18.0.10:6443', '--mode', 'ipvs', '--ipvs-scheduler', 'mh', '--ipvs-tcp-timeout', '15m', '--ipvs-udp-timeout', '1m2s',
          '--min-sync-period', '0', '--sync-period', '45s', '--conntrack-max-per-core', '8192', '--conntrack-min', '0', '--conntrack-tcp-be-liberal',
          '--conntrack-tcp-timeout-established', '2h', '--conntrack-udp-timeout-stream', '3m', '--oom-score-adj=-500', '--iptables-masquerade-bit', '3'],
        ['--manifests', '/m', '--mode', 'userspace', '--userspace-bind', '127.0.0.1,::1', '--userspace-ports', 'range', '--userspace-core', 'direct',
          '--proxy-port-range', '40000-40099', '--udp-timeout', '1.5s', '--node-ip', '198.18.0.1', '--cluster-cidr', '198.18.64.0/20,fd00:10::/64',
          '--detect-local-mode', 'NodeCIDR', '--nodeport-addresses', 'primary', '--conntrack-state', '/var/lib/ct', '--conntrack-checkpoint-period', '0',
          '--conntrack-max', '4096', '--metrics-bind-address', '', '--no-tun-offload', '--masquerade-all', '--service-node-port-range', '31000-31999'],
      ];
      for (const argv of cases) {
        const c = parseProxyArgs(argv);
        writeFileSync(file, configFile(c));
        expect(parseProxyArgs(['--config', file]), argv.join(' ')).toEqual(c);
      }
      // kube-proxy's own fields where kube-proxy keeps them.
      writeFileSync(file, configFile(parseProxyArgs(cases[1]!)));
      expect(readFileSync(file, 'utf8')).toMatch(/^conntrack:\n {2}maxPerCore: 8192\n {2}min: 0\n {2}tcpEstablishedTimeout: 2h0m0s\n/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads a ConfigMap as kubeadm writes it (every field, empty values) with kube-proxy\'s defaulting', () => {
    // config.conf of `kubectl -n kube-system get cm kube-proxy -o yaml` on a kubeadm cluster.
    const dumped = readFileSync(join(import.meta.dirname, '..', '..', 'support', 'kubeadm-kube-proxy.yaml'), 'utf8');
    const c = readConfigFile('/x.yaml', dumped);
    expect(c).toMatchObject({
      mode: 'iptables', kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf', clusterCIDRs: ['10.244.0.0/16'], detectLocalMode: 'ClusterCIDR',
      healthzBindAddress: '0.0.0.0:10256', metricsBindAddress: '127.0.0.1:10249', nodePortAddresses: [], udpIdleTimeoutMs: 250,
      minSyncPeriodMs: 1000, syncPeriodMs: 30_000, masqueradeAll: false, masqueradeBit: 14, oomScoreAdj: -999, nodeIPs: [], proxyPortRange: [0, 0],
      conntrackTCPEstablishedMs: 24 * 3_600_000, conntrackTCPCloseWaitMs: 3_600_000, conntrackUDPMs: 0, conntrackMaxPerCore: null, ipvsScheduler: '',
    });
    expect(() => validate(c)).not.toThrow();
    expect(ignoredSettings(c)).toEqual([]);
    // kubeadm with `mode: ipvs`: ipvs.minSyncPeriod 0s is 0 (kube-proxy gives it no default).
    expect(readConfigFile('/x.yaml', dumped.replace('mode: ""', 'mode: ipvs'))).toMatchObject({ mode: 'ipvs', minSyncPeriodMs: 0, syncPeriodMs: 30_000 });
    // A bare address gets kube-proxy's port (AppendPortIfNeeded), in a file and in a flag.
    expect(readConfigFile('/x.yaml', 'metricsBindAddress: 0.0.0.0\nhealthzBindAddress: "::"\n')).toMatchObject({ metricsBindAddress: '0.0.0.0:10249', healthzBindAddress: '[::]:10256' });
    expect(parseProxyArgs(['--manifests', '/m', '--metrics-bind-address', '198.18.0.1'])).toMatchObject({ metricsBindAddress: '198.18.0.1:10249' });
    // An empty address in a file is the default; svcplane's healthzServer / metricsServer turn them off, in any order.
    expect(readConfigFile('/x.yaml', 'metricsServer: false\nmetricsBindAddress: 0.0.0.0:9000\nhealthzServer: true\n')).toMatchObject({ metricsBindAddress: '', healthzBindAddress: '0.0.0.0:10256' });
    // A source on the command line replaces the file's kubeconfig (flags override the file).
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
    try {
      const p = join(dir, 'cm.yaml');
      writeFileSync(p, dumped);
      const src = (argv: string[]): [string | undefined, string | undefined] => { const x = parseProxyArgs(argv); return [x.kubeconfig, x.manifests]; };
      expect(src(['--config', p])).toEqual(['/var/lib/kube-proxy/kubeconfig.conf', undefined]);
      expect(src(['--config', p, '--manifests', '/m'])).toEqual([undefined, '/m']);
      writeFileSync(p, 'manifests: /m\n');
      expect(src(['--config', p, '--kubeconfig', '/k'])).toEqual(['/k', undefined]);
      expect(() => parseProxyArgs(['--config', p, '--kubeconfig', '/k', '--manifests', '/m2'])).toThrow(/exactly one of --manifests and --kubeconfig/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // kube-proxy's --proxy-mode is --mode; "" is the default; both given must agree.
    expect(parseProxyArgs(['--manifests', '/m', '--proxy-mode', 'ipvs']).mode).toBe('ipvs');
    expect(parseProxyArgs(['--manifests', '/m', '--proxy-mode', '']).mode).toBe('iptables');
    expect(() => parseProxyArgs(['--manifests', '/m', '--proxy-mode', 'ipvs', '--mode', 'direct'])).toThrow('--proxy-mode ipvs and --mode direct disagree');
  });

  it('takes kube-proxy flags and fields that change nothing here, and lists those that say something', () => {
    const c = parseProxyArgs(['--manifests', '/m', '--v=2', '-v', '4', '--feature-gates', 'A=true', '--profiling', '--iptables-localhost-nodeports=false', '--tun', 'svc3']);
    expect(c.tun).toBe('svc3');
    expect(ignoredSettings(c)).toEqual(['--v=2', '--v=4', '--feature-gates=A=true', '--profiling', '--iptables-localhost-nodeports=false']);
    expect(ignoredSettings(parseProxyArgs(['--manifests', '/m']))).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
    try {
      const p = join(dir, 'proxy.yaml');
      // Empty values (a kubeadm dump's) say nothing; set ones are listed.
      writeFileSync(p, 'manifests: /m\nipvs:\n  strictARP: true\n  excludeCIDRs: [198.18.0.0/16]\nclientConnection:\n  qps: 0\n  burst: 20\nlogging:\n  options: {json: {infoBufferSize: "0"}}\nenableProfiling: false\nconfigSyncPeriod: 15m0s\n');
      expect(ignoredSettings(parseProxyArgs(['--config', p, '--v', '1']))).toEqual(['--v=1', 'ipvs.strictARP', 'ipvs.excludeCIDRs', 'clientConnection.burst', 'configSyncPeriod']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Flags that would change what runs are not among them.
    expect(() => parseProxyArgs(['--manifests', '/m', '--init-only'])).toThrow(/Unknown option '--init-only'/);
  });

  it('takes kube-proxy\'s --master (the API server over the kubeconfig\'s, or alone) as a source', () => {
    expect(parseProxyArgs(['--master', 'https://198.18.0.10:6443'])).toMatchObject({ master: 'https://198.18.0.10:6443' });
    expect(parseProxyArgs(['--kubeconfig', '/k', '--master', 'http://198.18.0.10:8080'])).toMatchObject({ kubeconfig: '/k', master: 'http://198.18.0.10:8080' });
    expect(() => parseProxyArgs(['--manifests', '/m', '--master', 'https://198.18.0.10'])).toThrow(/exactly one of --manifests and --kubeconfig \(or --master\)/);
    expect(() => parseProxyArgs(['--master', '198.18.0.10:6443'])).toThrow('--master: expected the API server\'s URL (https://HOST[:PORT]), got "198.18.0.10:6443"');
  });

  it('takes the node name as kube-proxy\'s GetHostname does: trimmed and lowercased', () => {
    expect(parseProxyArgs(['--manifests', '/m', '--hostname-override', ' Worker-7.Example ']).nodeName).toBe('worker-7.example');
    expect(parseProxyArgs(['--manifests', '/m']).nodeName).toBe(hostname().trim().toLowerCase());
    expect(readConfigFile('/x.yaml', 'manifests: /m\nhostnameOverride: NODE1\n').nodeName).toBe('NODE1');
    expect(parseProxyArgs(['--manifests', '/m', '--hostname-override', 'NODE1']).nodeName).toBe('node1');
    expect(() => parseProxyArgs(['--manifests', '/m', '--hostname-override', '   '])).toThrow('--hostname-override: empty hostname is invalid');
  });

  it('takes --conntrack-checkpoint-period / conntrackCheckpointPeriod (default 10 s, 0 turns it off, never negative)', () => {
    expect(parseProxyArgs(['--manifests', '/m']).conntrackCheckpointMs).toBe(10_000);
    expect(parseProxyArgs(['--manifests', '/m', '--conntrack-checkpoint-period', '2m']).conntrackCheckpointMs).toBe(120_000);
    expect(parseProxyArgs(['--manifests', '/m', '--conntrack-checkpoint-period', '0']).conntrackCheckpointMs).toBe(0);
    expect(readConfigFile('/x.yaml', 'manifests: /m\nconntrackCheckpointPeriod: 30s\n').conntrackCheckpointMs).toBe(30_000);
    expect(() => parseProxyArgs(['--manifests', '/m', '--conntrack-checkpoint-period', 'often'])).toThrow(/--conntrack-checkpoint-period: expected a duration/);
    expect(() => readConfigFile('/x.yaml', 'manifests: /m\nconntrackCheckpointPeriod: 5\n')).toThrow(/x.yaml:2: conntrackCheckpointPeriod: expected a string/);
    expect(() => validate({ ...parseProxyArgs(['--manifests', '/m']), conntrackCheckpointMs: -1 })).toThrow('conntrackCheckpointMs: must not be negative');
  });

  it('takes kube-proxy\'s --ipvs-scheduler / ipvs.scheduler (default rr), naming the flag or file:line when unknown', () => {
    expect(parseProxyArgs(['--manifests', '/m']).ipvsScheduler).toBe('');
    expect(parseProxyArgs(['--manifests', '/m', '--mode', 'ipvs', '--ipvs-scheduler', 'mh']).ipvsScheduler).toBe('mh');
    expect(readConfigFile('/x.yaml', 'manifests: /m\nmode: ipvs\nipvs:\n  scheduler: sh\n  strictARP: true\n').ipvsScheduler).toBe('sh');
    expect(() => parseProxyArgs(['--manifests', '/m', '--ipvs-scheduler', 'fast'])).toThrow(/--ipvs-scheduler: expected one of rr, wrr, .*got "fast"/);
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
    try {
      const file = join(dir, 'proxy.yaml');
      writeFileSync(file, 'manifests: /m\nminSyncPeriod: 1s\nipvs:\n  scheduler: fast\n');
      expect(() => parseProxyArgs(['--config', file])).toThrow(new RegExp(`${file}:4: ipvs.scheduler: expected one of`));
      expect(parseProxyArgs(['--config', file, '--ipvs-scheduler', 'wrr']).ipvsScheduler).toBe('wrr');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => readConfigFile('/x.yaml', 'ipvs:\n  scheduler: 3\n')).toThrow(/x.yaml:2: ipvs.scheduler: expected a string/);
  });

  it('reads every flag', () => {
    const c = parseProxyArgs([
      '--kubeconfig', '/k', '--mode', 'direct', '--node-ip', '198.18.0.1', '--node-ip', 'fd00::1',
      '--cluster-cidr', '198.18.64.0/20,fd00:10::/64', '--service-cidr', '198.18.96.0/24', '--nodeport-addresses', 'primary,198.18.0.0/16',
      '--masquerade-all', '--masquerade-address', '198.18.97.1', '--tun', 'svtun1', '--metrics-bind-address', '[::1]:9100',
      '--healthz-bind-address', '', '--conntrack-state', '/var/lib/svcplane/ct', '--service-node-port-range', '31000-31999', '--conntrack-max', '4096',
    ]);
    expect(c).toMatchObject({
      kubeconfig: '/k', mode: 'direct', nodeIPs: ['198.18.0.1', 'fd00::1'], clusterCIDRs: ['198.18.64.0/20', 'fd00:10::/64'],
      serviceCIDRs: ['198.18.96.0/24'], nodePortAddresses: ['primary', '198.18.0.0/16'], masqueradeAll: true,
      masqueradeAddresses: ['198.18.97.1'], tun: 'svtun1', metricsBindAddress: '[::1]:9100', healthzBindAddress: '',
      conntrackState: '/var/lib/svcplane/ct', nodePortRange: [31000, 31999], conntrackMax: 4096,
    });
  });

  it('names the flag at fault', () => {
    const bad: Array<[string[], RegExp]> = [
      [['--manifests', '/m', '--mode', 'kernelspace'], /--mode: expected one of iptables, ipvs, direct, userspace/],
      [['--manifests', '/m', '--proxy-mode', 'nftables'], /--mode: nftables: kube-proxy's nftables ruleset is not run here \(svcplane render --mode nftables prints it\); use direct .* or iptables/],
      [['--manifests', '/m', '--userspace-bind', 'localhost'], /--userspace-bind: not an IP address: "localhost"/],
      [['--manifests', '/m', '--userspace-ports', 'any'], /--userspace-ports: expected service or range/],
      [['--manifests', '/m', '--userspace-core', 'userspace'], /--userspace-core: expected one of iptables, ipvs, direct,/],
      [['--manifests', '/m', '--proxy-port-range', '40000-30000'], /--proxy-port-range: bad range 40000-30000/],
      [['--manifests', '/m', '--udp-timeout', '250'], /--udp-timeout: expected a duration such as 250ms/],
      [['--manifests', '/m', '--udp-timeout', '0s'], /--udp-timeout: must be greater than 0/],
      [['--mode', 'iptables'], /exactly one of --manifests and --kubeconfig/],
      [['--manifests', '/m', '--kubeconfig', '/k'], /exactly one of/],
      [['--manifests', '/m', '--service-cidr', '10.96.0.0'], /--service-cidr: not a CIDR: "10.96.0.0"/],
      [['--manifests', '/m', '--node-ip', 'node1'], /--node-ip: not an IP address/],
      [['--manifests', '/m', '--tun', 'a-very-long-device-name'], /--tun: device names are 1-15/],
      [['--manifests', '/m', '--metrics-bind-address', 'localhost'], /--metrics-bind-address: expected ADDRESS:PORT/],
      [['--manifests', '/m', '--service-node-port-range', '32000-31000'], /nodePortRange|--service-node-port-range/],
      [['--manifests', '/m', '--frobnicate'], /Unknown option '--frobnicate'/],
      [['--manifests', '/m', '--conntrack-max', 'many'], /--conntrack-max: expected an integer, got "many"/],
    ];
    for (const [argv, msg] of bad) expect(() => parseProxyArgs(argv), argv.join(' ')).toThrow(msg);
    expect(() => parseProxyArgs(['--mode', 'x'])).toThrow(ConfigError);
  });
});

describe('kube-proxy\'s conntrack settings', () => {
  const H = 3_600_000;
  it('default to kube-proxy\'s timeouts (24 h established, 1 h close-wait, UDP left alone) and a table of 262144', () => {
    const c = parseProxyArgs(['--manifests', '/m']);
    expect(c).toMatchObject({
      conntrackTCPEstablishedMs: 24 * H, conntrackTCPCloseWaitMs: H, conntrackUDPMs: 0, conntrackUDPStreamMs: 0,
      conntrackTCPBeLiberal: false, conntrackMaxPerCore: null, conntrackMin: null, conntrackMax: 0,
    });
    expect(conntrackTableSize(c, 64)).toBe(CONNTRACK_TABLE_DEFAULT);
  });

  it('read their flags and the file\'s conntrack section; flags override the file', () => {
    const c = parseProxyArgs([
      '--manifests', '/m', '--conntrack-max-per-core', '8192', '--conntrack-min', '20000', '--conntrack-tcp-timeout-established', '2h',
      '--conntrack-tcp-timeout-close-wait', '0', '--conntrack-tcp-be-liberal', '--conntrack-udp-timeout', '45s', '--conntrack-udp-timeout-stream', '3m',
    ]);
    expect(c).toMatchObject({
      conntrackMaxPerCore: 8192, conntrackMin: 20000, conntrackTCPEstablishedMs: 2 * H, conntrackTCPCloseWaitMs: 0,
      conntrackTCPBeLiberal: true, conntrackUDPMs: 45_000, conntrackUDPStreamMs: 180_000,
    });
    // What `kubectl get cm kube-proxy` holds: every field written out, unset pointers as null.
    const f = readConfigFile('/x.yaml', [
      'manifests: /m', 'conntrack:', '  maxPerCore: 32768', '  min: 131072', '  tcpBeLiberal: true', '  tcpCloseWaitTimeout: 1h0m0s',
      '  tcpEstablishedTimeout: 12h0m0s', '  udpStreamTimeout: 0s', '  udpTimeout: 0s', '  max: null', '',
    ].join('\n'));
    expect(f).toMatchObject({
      conntrackMaxPerCore: 32768, conntrackMin: 131072, conntrackTCPBeLiberal: true, conntrackTCPCloseWaitMs: H,
      conntrackTCPEstablishedMs: 12 * H, conntrackUDPMs: 0, conntrackUDPStreamMs: 0,
    });
    expect(readConfigFile('/x.yaml', 'manifests: /m\nconntrack: {maxPerCore: null, min: null, tcpEstablishedTimeout: null}\n'))
      .toMatchObject({ conntrackMaxPerCore: null, conntrackMin: null, conntrackTCPEstablishedMs: 24 * H });
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
    try {
      const file = join(dir, 'proxy.yaml');
      writeFileSync(file, 'manifests: /m\nconntrack:\n  tcpEstablishedTimeout: 12h\n  maxPerCore: 0\n');
      expect(parseProxyArgs(['--config', file, '--conntrack-tcp-timeout-established', '1h'])).toMatchObject({ conntrackTCPEstablishedMs: H, conntrackMaxPerCore: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('take kube-proxy\'s IPVS timeouts (--ipvs-tcp-timeout, … / ipvs.tcpTimeout, …; default 0)', () => {
    expect(parseProxyArgs(['--manifests', '/m'])).toMatchObject({ ipvsTCPTimeoutMs: 0, ipvsTCPFinTimeoutMs: 0, ipvsUDPTimeoutMs: 0 });
    expect(parseProxyArgs(['--manifests', '/m', '--ipvs-tcp-timeout', '15m', '--ipvs-tcpfin-timeout', '30s', '--ipvs-udp-timeout', '10s']))
      .toMatchObject({ ipvsTCPTimeoutMs: 900_000, ipvsTCPFinTimeoutMs: 30_000, ipvsUDPTimeoutMs: 10_000 });
    expect(readConfigFile('/x.yaml', 'manifests: /m\nipvs:\n  tcpTimeout: 2m0s\n  tcpFinTimeout: 0s\n  udpTimeout: 1m\n  strictARP: true\n'))
      .toMatchObject({ ipvsTCPTimeoutMs: 120_000, ipvsTCPFinTimeoutMs: 0, ipvsUDPTimeoutMs: 60_000 });
    expect(() => readConfigFile('/x.yaml', 'ipvs:\n  udpTimeout: 30\n')).toThrow('/x.yaml:2: ipvs.udpTimeout: expected a string');
  });

  it('size the table as kube-proxy sizes nf_conntrack_max: max(maxPerCore × CPUs, min); --conntrack-max wins', () => {
    const base = parseProxyArgs(['--manifests', '/m']);
    const size = (o: Partial<typeof base>, cpus: number): number => conntrackTableSize({ ...base, ...o }, cpus);
    expect(size({ conntrackMaxPerCore: 32768, conntrackMin: 131072 }, 2)).toBe(131072);
    expect(size({ conntrackMaxPerCore: 32768, conntrackMin: 131072 }, 8)).toBe(262144);
    expect(size({ conntrackMaxPerCore: 32768, conntrackMin: 131072 }, 16)).toBe(524288);
    // The one given with kube-proxy's default for the other.
    expect(size({ conntrackMin: 500000 }, 4)).toBe(500000);
    expect(size({ conntrackMaxPerCore: 1000 }, 4)).toBe(131072);
    expect(size({ conntrackMaxPerCore: 1000, conntrackMin: 0 }, 4)).toBe(4000);
    // maxPerCore 0: kube-proxy leaves the limit as it is.
    expect(size({ conntrackMaxPerCore: 0, conntrackMin: 131072 }, 4)).toBe(CONNTRACK_TABLE_DEFAULT);
    expect(size({ conntrackMax: 4096, conntrackMaxPerCore: 32768 }, 4)).toBe(4096);
  });

  it('name the flag or file:line of a bad value', () => {
    const bad: Array<[string[], string | RegExp]> = [
      [['--conntrack-max-per-core=-1'], /--conntrack-max-per-core: expected a whole number from 0 to 2147483647, got -1/],
      [['--conntrack-min', 'lots'], /--conntrack-min: expected an integer, got "lots"/],
      [['--conntrack-max-per-core', '1', '--conntrack-min', '0'], /--conntrack-max-per-core: the conntrack table would hold \d+ flows .* it holds 16 to 16777216/],
      [['--conntrack-min', '20000000'], /--conntrack-min: the conntrack table would hold 20000000 flows/],
      [['--conntrack-tcp-timeout-established=-1h'], /--conntrack-tcp-timeout-established: expected a duration/],
      [['--conntrack-tcp-timeout-close-wait', '500ms'], '--conntrack-tcp-timeout-close-wait: must be 0 or at least 1s (the kernel counts whole seconds)'],
      [['--conntrack-udp-timeout-stream', '600h'], '--conntrack-udp-timeout-stream: must be at most 2147483s'],
    ];
    for (const [argv, msg] of bad) expect(() => parseProxyArgs(['--manifests', '/m', ...argv]), argv.join(' ')).toThrow(msg);
    const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
    try {
      const file = join(dir, 'proxy.yaml');
      writeFileSync(file, 'manifests: /m\nconntrack:\n  maxPerCore: 32768\n  min: -5\n');
      expect(() => parseProxyArgs(['--config', file])).toThrow(`${file}:4: conntrack.min: expected a whole number from 0 to 2147483647, got -5`);
      writeFileSync(file, 'manifests: /m\nconntrack:\n  udpTimeout: 300ms\n');
      expect(() => parseProxyArgs(['--config', file])).toThrow(`${file}:3: conntrack.udpTimeout: must be 0 or at least 1s`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => readConfigFile('/x.yaml', 'conntrack:\n  tcpBeLiberal: 1\n')).toThrow('/x.yaml:2: conntrack.tcpBeLiberal: expected true or false');
    expect(() => readConfigFile('/x.yaml', 'conntrack:\n  maxPerCore: "1"\n')).toThrow('/x.yaml:2: conntrack.maxPerCore: expected a number');
    expect(() => parseProxyArgs(['--manifests', '/m', '--ipvs-tcpfin-timeout', '0.5s'])).toThrow('--ipvs-tcpfin-timeout: must be 0 or at least 1s');
    // Whole seconds, as kube-proxy writes them to the sysctl.
    expect(parseProxyArgs(['--manifests', '/m', '--conntrack-udp-timeout', '1.9s']).conntrackUDPMs).toBe(1000);
  });
});

describe('userspace mode settings', () => {
  it('has kube-proxy\'s userspace defaults (any free port, 250 ms UDP idle timeout) and loopback listeners', () => {
    const c = parseProxyArgs(['--manifests', '/m', '--mode', 'userspace']);
    expect(c).toMatchObject({ mode: 'userspace', userspaceBind: ['127.0.0.1'], userspacePorts: 'service', userspaceCore: 'iptables', proxyPortRange: [0, 0], udpIdleTimeoutMs: 250 });
    expect(coreMode(c)).toBe('iptables');
    expect(coreMode(parseProxyArgs(['--manifests', '/m', '--mode', 'direct']))).toBe('direct');
  });

  it('reads its flags and file fields (kube-proxy\'s portRange and udpIdleTimeout among them)', () => {
    const c = parseProxyArgs([
      '--manifests', '/m', '--mode', 'userspace', '--userspace-bind', '127.0.0.1,::1', '--userspace-bind', '0:0::1:2',
      '--userspace-ports', 'range', '--userspace-core', 'ipvs', '--proxy-port-range', '40000-40999', '--udp-timeout', '1m2.5s',
    ]);
    expect(c).toMatchObject({ userspaceBind: ['127.0.0.1', '::1', '::1:2'], userspacePorts: 'range', userspaceCore: 'ipvs', proxyPortRange: [40000, 40999], udpIdleTimeoutMs: 62_500 });
    const c2 = readConfigFile('/x.yaml', 'mode: userspace\nportRange: 31000-31099\nudpIdleTimeout: 2s\nuserspaceBind: [::1]\nuserspacePorts: range\nuserspaceCore: direct\n');
    expect(c2).toMatchObject({ mode: 'userspace', proxyPortRange: [31000, 31099], udpIdleTimeoutMs: 2000, userspaceBind: ['::1'], userspacePorts: 'range', userspaceCore: 'direct' });
    expect(() => readConfigFile('/x.yaml', 'mode: userspace\nudpIdleTimeout: soon\n')).toThrow('/x.yaml:2: udpIdleTimeout: expected a duration such as 250ms or 2s, got "soon"');
  });
});

describe('proxy config file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'svp-cfg-'));
  const file = (name: string, text: string): string => { const p = join(dir, name); writeFileSync(p, text); return p; };

  it('reads KubeProxyConfiguration fields and svcplane\'s own; flags override the file', () => {
    const p = file('ok.yaml', [
      'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
      'kind: KubeProxyConfiguration',
      'mode: ipvs',
      'clusterCIDR: 198.18.64.0/20',
      'hostnameOverride: worker-3',
      'nodePortAddresses: [198.18.0.0/16]',
      'metricsBindAddress: 127.0.0.1:20249',
      'healthzBindAddress: 0.0.0.0:20256',
      'clientConnection: {kubeconfig: /etc/kubeconfig, qps: 5}',
      'iptables: {masqueradeAll: true, syncPeriod: 30s}',
      'conntrack: {maxPerCore: 32768}',
      'serviceCIDR: [198.18.96.0/24]',
      'conntrackState: /run/svcplane/ct',
      'tun: svc7',
      'syncPeriod: 45s',
    ].join('\n'));
    const c = parseProxyArgs(['--config', p]);
    expect(c).toMatchObject({
      mode: 'ipvs', clusterCIDRs: ['198.18.64.0/20'], nodeName: 'worker-3', nodePortAddresses: ['198.18.0.0/16'],
      metricsBindAddress: '127.0.0.1:20249', healthzBindAddress: '0.0.0.0:20256', kubeconfig: '/etc/kubeconfig',
      masqueradeAll: true, serviceCIDRs: ['198.18.96.0/24'], conntrackState: '/run/svcplane/ct', tun: 'svc7',
      syncPeriodMs: 45_000,
    });
    expect(parseProxyArgs(['--config', p, '--sync-period', '2s']).syncPeriodMs).toBe(2000);
    expect(parseProxyArgs(['--manifests', '/m']).syncPeriodMs).toBe(30_000);
    // kube-proxy's boolean flags take a value (pflag, strconv.ParseBool): false turns off the file's true.
    expect(parseProxyArgs(['--config', p, '--masquerade-all=false']).masqueradeAll).toBe(false);
    expect(parseProxyArgs(['--config', p, '--masquerade-all=0']).masqueradeAll).toBe(false);
    expect(parseProxyArgs(['--manifests', '/m', '--masquerade-all=True', '--conntrack-tcp-be-liberal=t']))
      .toMatchObject({ masqueradeAll: true, conntrackTCPBeLiberal: true });
    expect(parseProxyArgs(['--manifests', '/m', '--no-tun-offload=false']).tunOffload).toBe(true);
    expect(() => parseProxyArgs(['--manifests', '/m', '--masquerade-all=yes'])).toThrow('--masquerade-all: expected true or false, got "yes"');
    expect(() => parseProxyArgs(['--manifests', '/m', '--sync-period', '0'])).toThrow('--sync-period: must be greater than 0');
    expect(parseProxyArgs(['--config', p, '--mode', 'iptables', '--tun', 'svc8']).mode).toBe('iptables');
    expect(parseProxyArgs(['--config', p, '--tun', 'svc8']).tun).toBe('svc8');
  });

  it('names the file, line and field of a bad value or an unknown field', () => {
    const unknown = file('unknown.yaml', 'kind: KubeProxyConfiguration\nmode: iptables\nclusterCIDRS: 10.0.0.0/8\n');
    expect(() => readConfigFile(unknown)).toThrow(`${unknown}:3: clusterCIDRS: unknown field`);
    const nested = file('nested.yaml', 'iptables:\n  masqueradeAll: "yes"\n');
    expect(() => readConfigFile(nested)).toThrow(`${nested}:2: iptables.masqueradeAll: expected true or false`);
    const kind = file('kind.yaml', 'kind: KubeletConfiguration\n');
    expect(() => readConfigFile(kind)).toThrow(/kind.yaml:1: kind: expected KubeProxyConfiguration/);
    const syntax = file('syntax.yaml', 'mode: [iptables\n');
    expect(() => readConfigFile(syntax)).toThrow(/syntax.yaml:\d+: /);
    const indent = file('indent.yaml', 'mode: iptables\nclusterCIDR: @x\n');
    expect(() => readConfigFile(indent)).toThrow(/indent.yaml:2: /);
    const two = file('two.yaml', 'mode: iptables\n---\nmode: ipvs\n');
    expect(() => readConfigFile(two)).toThrow(`${two}:2: one YAML document expected, this is a second`);
    const key = file('key.yaml', '? [mode]\n: iptables\n');
    expect(() => readConfigFile(key)).toThrow(`${key}:1: a mapping key must be a single value, not a list, a mapping or an alias`);
    const badCidr = file('cidr.yaml', 'clusterCIDR: nope\n');
    expect(() => parseProxyArgs(['--config', badCidr, '--manifests', '/m'])).toThrow(`${badCidr}:1: clusterCIDR: not a CIDR: "nope"`);
    // Values read into numbers, and values checked once the whole file is read, name their line too.
    const ranges = file('ranges.yaml', 'manifests: /m\nserviceNodePortRange: 30000-\nportRange: 1-2\n');
    expect(() => readConfigFile(ranges)).toThrow(`${ranges}:2: serviceNodePortRange: expected FIRST-LAST, got "30000-"`);
    const period = file('period.yaml', 'manifests: /m\nmode: iptables\nminSyncPeriod: 1 s\n');
    expect(() => readConfigFile(period)).toThrow(`${period}:3: minSyncPeriod: expected a duration such as 250ms or 2s, got "1 s"`);
    const late = file('late.yaml', 'manifests: /m\nmode: iptables\n\nnodeIP: [198.18.0.2, nope]\nhealthzBindAddress: here\n');
    expect(() => parseProxyArgs(['--config', late])).toThrow(`${late}:4: nodeIP: not an IP address: "nope"`);
    expect(() => parseProxyArgs(['--config', late, '--node-ip', '198.18.0.2'])).toThrow(`${late}:5: healthzBindAddress: expected ADDRESS:PORT, got "here"`);
    // A field the file left out is named by the file alone; a flag by its name.
    expect(() => parseProxyArgs(['--config', late, '--node-ip', '198.18.0.2', '--healthz-bind-address', 'x'])).toThrow('--healthz-bind-address: expected ADDRESS:PORT, got "x"');
    expect(() => parseProxyArgs(['--config', file('none.yaml', 'mode: ipvs\n')])).toThrow(/none.yaml: manifests: exactly one of/);
    expect(() => parseProxyArgs(['--config', join(dir, 'missing.yaml')])).toThrow(`--config ${join(dir, 'missing.yaml')}: cannot read it (ENOENT)`);
    expect(() => parseProxyArgs(['--config', dir])).toThrow(`--config ${dir}: cannot read it (EISDIR)`);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('NodePort addresses', () => {
  it('filters the host addresses per family like --nodeport-addresses (a family without a CIDR: all of its addresses; "primary": each family\'s node IP)', () => {
    const host = ['198.18.0.1', '198.18.5.1', 'fd00::1', 'fd00::2'];
    expect(nodePortAddresses([], host)).toEqual(host);
    expect(nodePortAddresses(['primary'], host)).toEqual(['198.18.0.1', 'fd00::1']);
    expect(nodePortAddresses(['198.18.4.0/22', 'fd00::2/128'], host)).toEqual(['198.18.5.1', 'fd00::2']);
    expect(nodePortAddresses(['198.19.0.0/16'], host)).toEqual(['fd00::1', 'fd00::2']);
    expect(nodePortAddresses(['198.18.4.0/22'], ['198.18.5.1', '198.18.5.1'])).toEqual(['198.18.5.1']);
  });

  it('health check ports listen on every address unless --nodeport-addresses narrows every family the node has', () => {
    const dual = ['198.18.0.1', '198.18.5.1', 'fd00::1'];
    expect(healthCheckAddresses([], dual)).toEqual(['0.0.0.0']);
    expect(healthCheckAddresses(['0.0.0.0/0'], ['198.18.0.1'])).toEqual(['0.0.0.0']);
    expect(healthCheckAddresses(['primary'], dual)).toEqual(['198.18.0.1', 'fd00::1']);
    expect(healthCheckAddresses(['198.18.4.0/22'], ['198.18.0.1', '198.18.5.1'])).toEqual(['198.18.5.1']);
    // A family left without a CIDR takes all of its addresses: kube-proxy's proxier of that family
    // listens on 0.0.0.0 (service_health.go), which Go opens for both families.
    expect(healthCheckAddresses(['198.18.4.0/22'], dual)).toEqual(['0.0.0.0']);
  });
});
