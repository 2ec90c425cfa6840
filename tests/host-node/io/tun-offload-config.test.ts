// `svcplane proxy`'s TUN offload switch: on by default, off with --no-tun-offload or `tunOffload:
// false` in the config file (flags override the file), and a non-boolean in the file is an error
// naming file, line and field.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseProxyArgs, readConfigFile, ConfigError } from '../../../host-node/io/proxy-config.js';

describe('TUN offload setting', () => {
  it('is on by default and off with --no-tun-offload', () => {
    expect(parseProxyArgs(['--manifests', '/m']).tunOffload).toBe(true);
    expect(parseProxyArgs(['--manifests', '/m', '--no-tun-offload']).tunOffload).toBe(false);
  });

  it('comes from the config file, where the flag still turns it off', () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-offload-'));
    try {
      const off = join(dir, 'off.yaml');
      writeFileSync(off, 'kind: KubeProxyConfiguration\ntunOffload: false\n');
      expect(readConfigFile(off).tunOffload).toBe(false);
      const on = join(dir, 'on.yaml');
      writeFileSync(on, 'kind: KubeProxyConfiguration\nmanifests: /m\ntunOffload: true\n');
      expect(parseProxyArgs(['--config', on]).tunOffload).toBe(true);
      expect(parseProxyArgs(['--config', on, '--no-tun-offload']).tunOffload).toBe(false);
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, 'kind: KubeProxyConfiguration\ntunOffload: "yes"\n');
      expect(() => readConfigFile(bad)).toThrow(ConfigError);
      expect(() => readConfigFile(bad)).toThrow(/bad\.yaml:2: tunOffload: expected true or false/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
