// `svcplane dns`: the standalone server answers the real `dig` (BIND's dnsutils) over loopback UDP
// from a manifests directory — A, AAAA for a dual-stack Service, SRV, PTR, CNAME for ExternalName,
// NXDOMAIN with the SOA, the dns-version TXT — reloads when a file changes, and names a broken
// file's errors with file and line while the previous records keep being served.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer, parseListen, runDns, type DnsServer } from '../../../host-node/cli/dns.js';
import { FIXTURE } from '../../assembly/dns/msg.js';

const run = promisify(execFile);

let dir = '';
let server: DnsServer;
const logs: string[] = [];

async function dig(...args: string[]): Promise<string> {
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(server.address.port), '+tries=1', '+time=3', ...args]);
  return stdout;
}
const short = async (...args: string[]) => (await dig('+short', ...args)).trim().split('\n').filter((l) => l !== '').sort();

async function until(check: () => Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svp-dns-'));
  writeFileSync(join(dir, 'fixture.yaml'), FIXTURE);
  server = await startDnsServer({ listen: '127.0.0.1:0', manifests: dir, log: (l) => logs.push(l), pollMs: 200 });
});

afterAll(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('svcplane dns answers dig', () => {
  it('binds an ephemeral loopback port', () => {
    expect(server.address.address).toBe('127.0.0.1');
    expect(server.address.port).toBeGreaterThan(0);
    expect(logs.some((l) => /^dns: serving \d+ records for cluster\.local$/.test(l))).toBe(true);
  });

  it('A and AAAA (dual-stack)', async () => {
    expect(await short('kubernetes.default.svc.cluster.local', 'A')).toEqual(['10.3.0.1']);
    expect(await short('dual.prod.svc.cluster.local', 'AAAA')).toEqual(['fd00::20']);
    expect(await short('dual.prod.svc.cluster.local', 'A')).toEqual(['10.3.0.20']);
    const full = await dig('kubernetes.default.svc.cluster.local', 'A');
    expect(full).toMatch(/status: NOERROR/);
    expect(full).toMatch(/flags: qr aa rd;/);
  });

  it('SRV for a named port and PTR for a ClusterIP', async () => {
    expect(await short('_dns._udp.dual.prod.svc.cluster.local', 'SRV')).toEqual(['0 100 53 dual.prod.svc.cluster.local.']);
    expect(await short('-x', '10.3.0.1')).toEqual(['kubernetes.default.svc.cluster.local.']);
    expect(await short('-x', 'fd00::20')).toEqual(['dual.prod.svc.cluster.local.']);
  });

  it('CNAME for an ExternalName Service', async () => {
    const out = await dig('+noall', '+answer', 'foo.default.svc.cluster.local', 'CNAME');
    expect(out).toMatch(/^foo\.default\.svc\.cluster\.local\.\s+5\s+IN\s+CNAME\s+www\.example\.com\.$/m);
  });

  it('NXDOMAIN carries the zone SOA in authority', async () => {
    const out = await dig('nope.default.svc.cluster.local', 'A');
    expect(out).toMatch(/status: NXDOMAIN/);
    expect(out).toMatch(/;; AUTHORITY SECTION:\ncluster\.local\.\s+5\s+IN\s+SOA\s+ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\. /);
    expect(out).toMatch(/ANSWER: 0,/);
  });

  it('TXT dns-version and REFUSED outside the zone', async () => {
    expect(await short('dns-version.cluster.local', 'TXT')).toEqual(['"1.1.0"']);
    expect(await dig('example.com', 'A')).toMatch(/status: REFUSED/);
  });

  it('reloads on change, and keeps serving through a broken file whose error names file and line', async () => {
    const extra = join(dir, 'extra.yaml');
    writeFileSync(extra, 'apiVersion: v1\nkind: Service\nmetadata: { name: late, namespace: ns }\nspec: { clusterIP: 10.3.7.7, ports: [{ port: 80 }] }\n');
    await until(async () => (await short('late.ns.svc.cluster.local', 'A')).join() === '10.3.7.7');
    writeFileSync(extra, 'apiVersion: v1\nkind: Service\nmetadata: { name: late, namespace: ns }\nspec:\n  clusterIP: 10.3.7.999\n');
    await until(async () => logs.some((l) => l.includes(`${extra}:5: Service ns/late`)));
    // The broken object is left out; every other name still answers.
    expect(await short('kubernetes.default.svc.cluster.local', 'A')).toEqual(['10.3.0.1']);
    expect(server.counters().queries).toBeGreaterThan(10);
  });
});

describe('command line', () => {
  it('parses --listen and refuses bad arguments', async () => {
    expect(parseListen('127.0.0.1:5353')).toEqual({ host: '127.0.0.1', port: 5353, type: 'udp4' });
    expect(parseListen('[::1]:53')).toEqual({ host: '::1', port: 53, type: 'udp6' });
    expect(() => parseListen('127.0.0.1')).toThrow(/ADDR:PORT/);
    let err = '';
    expect(await runDns(['--listen', '127.0.0.1:0'], () => {}, (s) => (err += s))).toBe(2);
    expect(err).toMatch(/--manifests is required/);
    expect(await runDns(['--manifests', dir, '--ttl', 'x'], () => {}, (s) => (err += s))).toBe(2);
    expect(err).toMatch(/--ttl/);
    // Each refused before a server starts (exit 2, the flag named), not after it.
    for (const [args, flag] of [
      [['--ttl='], '--ttl'], [['--ttl', '1e3'], '--ttl'], [['--listen', 'foo'], '--listen'],
      [['--cluster-domain', '...'], '--cluster-domain'], [['--cluster-domain='], '--cluster-domain'],
      [['--cluster-domain', `${'a'.repeat(64)}.local`], '--cluster-domain'],
    ] as const) {
      err = '';
      expect(await runDns(['--manifests', dir, '--listen', '127.0.0.1:0', ...args], () => {}, (s) => (err += s)), args.join(' ')).toBe(2);
      expect(err).toContain(flag);
    }
  });

  it('--cluster-domain and --ttl reach the answers', async () => {
    const other = await startDnsServer({ listen: '127.0.0.1:0', manifests: join(dir, 'fixture.yaml'), zone: 'corp.example', ttl: 30, watch: false });
    try {
      const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(other.address.port), '+tries=1', '+time=3', '+noall', '+answer',
        'kubernetes.default.svc.corp.example', 'A']);
      expect(stdout).toMatch(/^kubernetes\.default\.svc\.corp\.example\.\s+30\s+IN\s+A\s+10\.3\.0\.1$/m);
    } finally {
      await other.close();
    }
  });
});
