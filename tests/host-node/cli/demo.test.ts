// `svcplane demo` runs the built-in sample through the real core and reports each packet's fate.
import { describe, it, expect } from 'vitest';
import { runDemo } from '../../../host-node/cli/demo.js';

describe('svcplane demo', () => {
  it('shows NAT, un-NAT, masquerade, hairpin, no-endpoint and malformed cases', async () => {
    const lines: string[] = [];
    expect(await runDemo((l) => lines.push(l))).toBe(0);
    const text = lines.join('\n');
    expect(text).toMatch(/TCP 10\.244\.1\.5:40000 → 10\.96\.0\.80:80 \[S\]\n\s+FORWARD ct=NEW\s+⇒ TCP 10\.244\.1\.5:40000 → 10\.244\.\d\.1\d:8080/);
    expect(text).toMatch(/FORWARD ct=ESTABLISHED\s+⇒ TCP 10\.96\.0\.80:80 → 10\.244\.1\.5:40000 \[SA\]/);
    expect(text).toMatch(/⇒ TCP 192\.168\.49\.2:51000 → 10\.244\.\d\.1\d:8080/);
    expect(text).toMatch(/⇒ TCP 192\.168\.49\.2:42000 → 10\.244\.1\.31:8080/);
    expect(text).toMatch(/REPLY \(no_endpoints\)\s+⇒ ICMP 192\.168\.49\.2 → 10\.244\.1\.5/);
    expect(text).toMatch(/DROP \(truncated\)/);
    expect(text).toMatch(/tcp\s+ESTABLISHED\s+10\.244\.1\.5:40000 → 10\.96\.0\.80:80/);
  });
});
