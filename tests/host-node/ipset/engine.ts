// The iptables engine and the ipset core in one test instance (build/testing-ipset.wasm exports
// both): iptables-restore text through the real parser and compiler, ipset text through
// IpsetTable, both naming sets by the compiler's ids, and packets run through the hooks.
import { loadTestingCore, type TestingCore } from '../../support/testing-core';
import { buildPacket, type PacketSpec } from '../../../host-node/core/packet';
import { parseRestore } from '../../../host-node/netfilter/restore';
import { IptCompiler, loadRestore, type IptCore } from '../../../host-node/netfilter/compile';
import type { Ruleset } from '../../../host-node/netfilter/ruleset';
import type { Family } from '../../../host-node/netfilter/model';
import { IpsetTable } from '../../../host-node/ipset/table';
import type { IpsetCore } from '../../../host-node/ipset/core';

export const V = { PASS: 0, FORWARD: 1, DROP: 2, REPLY: 3 } as const;
export const IS_SET_NO_TABLE = 2;
const DESC = { verdict: 16, mark: 20, len: 4 };

export class Engine {
  readonly core: TestingCore;
  readonly compiler = new IptCompiler();
  readonly ipset: IpsetTable;
  rulesets: Record<Family, Ruleset | undefined> = { 4: undefined, 6: undefined };
  now = 1_000_000;

  constructor() {
    this.core = loadTestingCore('ipset');
    if (this.core.x.setup!(12, 7, 0) !== 0) throw new Error('conntrack init failed');
    const ipsetCore = { ...(this.core.x as unknown as IpsetCore), memory: this.core.memory };
    this.ipset = new IpsetTable(ipsetCore, {
      setId: (name) => this.compiler.setId(name),
      references: (name) => this.references(name),
      now: () => this.now,
    });
  }

  // Rules naming the set, over both families (what the kernel's set->ref counts).
  private references(name: string): number {
    let n = 0;
    for (const rs of [this.rulesets[4], this.rulesets[6]]) {
      if (!rs) continue;
      for (const t of rs.tables.values()) {
        for (const c of t.chains()) {
          for (const r of c.rules) n += r.matches.filter((m) => m.kind === 'set' && m.name === name).length;
        }
      }
    }
    return n;
  }

  iptables(text: string, family: Family = 4): void {
    const r = parseRestore(text, { family, noflush: false, base: this.rulesets[family] });
    if (!r.ok) throw new Error(r.error.message);
    const compiled = this.compiler.compile(r.ruleset, r.touched);
    const ipt = { ...(this.core.x as unknown as IptCore), memory: this.core.memory };
    loadRestore(ipt, this.compiler, compiled, () => this.core.scratch + (1 << 19));
    this.rulesets[family] = r.ruleset;
  }

  send(spec: PacketSpec, local = false): { verdict: number; mark: number } {
    const bytes = buildPacket(spec);
    const ptr = this.core.put(bytes);
    this.core.x.run!(ptr, bytes.length, 4096, local ? 1 : 0, this.now);
    const dv = this.core.dv();
    const d = this.core.x.descPtr!();
    return { verdict: dv.getUint8(d + DESC.verdict), mark: dv.getUint32(d + DESC.mark, true) };
  }

  stat(i: number): bigint {
    return this.core.dv().getBigUint64((this.core.x.iptStatsPtr!() >>> 0) + i * 8, true);
  }
}

/** A filter table whose INPUT and FORWARD chains both jump to TEST. */
export function filterWith(rules: string): string {
  return `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:TEST - [0:0]\n` +
    `-A INPUT -j TEST\n-A FORWARD -j TEST\n${rules}\nCOMMIT\n`;
}
