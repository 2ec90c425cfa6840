// The proxy's HTTP servers (health.ts listen()) bound to a wildcard host answer on both families,
// as kube-proxy's Go listeners on 0.0.0.0 do (an IPv6 socket that takes IPv4 too): checked inside
// a throwaway namespace, whose loopback has 127.0.0.1 and ::1, so no real interface gets a
// listener. A named address still listens on that address alone.
import { describe, it, expect, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NetnsScope, kernelSkip } from '../support/netns';

const skip = kernelSkip('tests/kernel/health-listen', ['ip']);
const HEALTH = fileURLToPath(new URL('../../dist/host-node/io/health.js', import.meta.url));

describe.skipIf(skip !== '')('health servers on a wildcard address', () => {
  const scope = new NetnsScope('hl');
  afterAll(() => scope.destroy());

  it('0.0.0.0 answers on 127.0.0.1 and ::1; 127.0.0.1 answers there alone', () => {
    if (!existsSync(HEALTH)) throw new Error(`${HEALTH} is missing: run node scripts/build.mjs first (npm test does)`);
    const ns = scope.create('n');
    scope.must(ns, ['ip', 'link', 'set', 'lo', 'up']);
    // A child in the namespace: each server on an ephemeral port, asked over both loopbacks.
    const src = `import { listen, closeServer } from ${JSON.stringify(HEALTH)};
import { request } from 'node:http';
const ask = (host, port) => new Promise((resolve) => {
  request({ host, port, path: '/', agent: false, timeout: 2000 }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); })
    .on('error', (e) => resolve(e.code)).end();
});
const out = {};
for (const bind of ['0.0.0.0', '127.0.0.1']) {
  const s = await listen((_q, r) => { r.writeHead(204); r.end(); }, bind, 0);
  const port = s.address().port;
  out[bind] = { v4: await ask('127.0.0.1', port), v6: await ask('::1', port) };
  await closeServer(s);
}
console.log(JSON.stringify(out));`;
    const r = scope.must(ns, [process.execPath, '--input-type=module', '-e', src], { timeoutMs: 20_000 });
    expect(JSON.parse(r.trim())).toEqual({ '0.0.0.0': { v4: 204, v6: 204 }, '127.0.0.1': { v4: 204, v6: 'ECONNREFUSED' } });
  });
});
