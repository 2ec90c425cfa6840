// iptables-gen.ts — random iptables-restore input for the kernel differential of the text front
// end (tests/kernel/restore-differential.test.ts): single rules that mix every match and target
// svcplane models, in the spellings iptables accepts and in many it refuses (bad addresses, masks,
// ports, service names, rates, option combinations, protocol mismatches, restricted targets in
// the wrong chain), and whole restore scripts of commands (-A -I -D -R -N -X -F -Z -P -E -C,
// chain declarations with counters) over a few chains of every table. Deterministic per seed.
// Never generates what svcplane refuses on purpose as unsupported (CT --zone/--helper, a bare
// `-j CT`, sctp --chunk-types, --hitcount above 20): the parse tests pin those.
import { Rng } from './kube-gen';

export type TableName = 'filter' | 'nat' | 'mangle' | 'raw';

export interface GenRule {
  table: TableName;
  chain: string;
  /** The rule's words after `-A CHAIN`. */
  text: string;
}

/** User chains every generated rule block declares; rules jump among them. */
export const RULE_CHAINS = ['TEST', 'OTHER'] as const;

const CHAINS_OF: Record<TableName, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT', 'TEST'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING', 'TEST'],
  mangle: ['PREROUTING', 'FORWARD', 'POSTROUTING', 'TEST'],
  raw: ['PREROUTING', 'OUTPUT', 'TEST'],
};

/** The restore text loading one generated rule (its chains declared, the table replaced). */
export function ruleBlock(r: GenRule): string {
  return `*${r.table}\n${RULE_CHAINS.map((c) => `:${c} - [0:0]\n`).join('')}-A ${r.chain} ${r.text}\nCOMMIT\n`;
}

export class RuleGen {
  /** `cutShort`: now and then abbreviate a long option (see abbreviate()). */
  constructor(private readonly rng: Rng, readonly family: 4 | 6, private readonly cutShort = true) {}

  rule(): GenRule {
    const g = this.rng;
    const table = g.pick<TableName>(['filter', 'filter', 'nat', 'nat', 'mangle', 'raw']);
    const chain = g.pick(CHAINS_OF[table]);
    const parts: string[] = [];
    let proto: string | null = null;
    if (g.chance(0.6)) {
      proto = g.pick(this.family === 4
        ? ['tcp', 'udp', 'sctp', 'icmp', 'all', '6', '17', 'TCP', 'icmpv6', 'gre', '0', '256']
        : ['tcp', 'udp', 'sctp', 'icmpv6', 'ipv6-icmp', 'all', 'icmp', '58']);
      parts.push(`${this.neg(0.1)}${g.pick(['-p', '--protocol'])} ${proto}`);
    }
    for (let i = g.int(0, 3); i > 0; i--) parts.push(this.match());
    const p = ({ '6': 'tcp', '17': 'udp', TCP: 'tcp', '58': 'icmpv6', 'ipv6-icmp': 'icmpv6' } as Record<string, string>)[proto ?? ''] ?? proto;
    if (p === 'tcp' || p === 'udp' || p === 'sctp') parts.push(...this.l4(p));
    if (p === 'icmp' || p === 'icmpv6') parts.push(...this.icmp(p));
    if (g.chance(0.15)) parts.push(this.multiport());
    if (g.chance(0.1)) parts.push(`-m ${g.pick(['tcp', 'udp', 'icmp', 'sctp'])}`);
    for (let i = parts.length - 1; i > 0; i--) {
      if (g.chance(0.2)) {
        const j = g.int(0, i);
        [parts[i], parts[j]] = [parts[j]!, parts[i]!];
      }
    }
    if (g.chance(0.95)) parts.push(`${g.pick(['-j', '-j', '--jump', '-g'])} ${this.target(table)}`);
    return { table, chain, text: this.abbreviate(parts.join(' ')) };
  }

  /** Now and then one long option cut short, as getopt_long lets a user write it (`--dpo`, `--to`):
   *  iptables takes it when it abbreviates one option only. */
  private abbreviate(text: string): string {
    const g = this.rng;
    if (!this.cutShort || !g.chance(0.12) || text.includes('"')) return text;
    const words = text.split(' ');
    const longs = words.map((w, i) => (w.startsWith('--') && w.length > 3 ? i : -1)).filter((i) => i >= 0);
    if (longs.length === 0) return text;
    const i = g.pick(longs);
    words[i] = words[i]!.slice(0, g.int(3, words[i]!.length - 1));
    return words.join(' ');
  }

  private neg(p = 0.2): string {
    return this.rng.chance(p) ? '! ' : '';
  }

  private ip(): string {
    const g = this.rng;
    if (this.family === 6) {
      return g.pick([
        `fd00::${g.int(0, 65535).toString(16)}`, '::', '::1', '::ffff:1.2.3.4', 'fd00::1::2', `FD00::${g.int(0, 255)}`,
        '1:2:3:4:5:6:7:8', 'fd00:0:0:0:0:0:0:1', `fd00:${g.int(0, 9)}::`,
      ]);
    }
    return g.pick([
      `198.18.${g.int(0, 255)}.${g.int(0, 255)}`, `${g.int(0, 255)}.${g.int(0, 255)}.${g.int(0, 255)}.${g.int(0, 255)}`,
      '0.0.0.0', `1.2.3.${g.int(250, 260)}`, '1.2.3', '01.2.3.4', '1.2.3.4.5', `10.${g.int(0, 9)}`, '0x7f.1', '',
    ]);
  }

  private addr(): string {
    const g = this.rng;
    const mask = this.family === 4
      ? g.pick(['', '', `/${g.int(0, 33)}`, '/255.255.0.0', '/255.0.255.0', '/0.0.0.0', '/255.255.255.255', '/-1', '/08', '/0x10'])
      : g.pick(['', '', `/${g.int(0, 129)}`, '/64', '/ffff:ffff::', '/ffff::ffff', '/128']);
    return this.ip() + mask;
  }

  private port(): string {
    const g = this.rng;
    return g.pick([
      String(g.int(0, 65535)), String(g.int(1, 1024)), '65536', '65537', '4294967296', 'http', 'ssh', 'domain', 'ntp',
      'https', '-1', '0x50', '080', '+80', '',
    ]);
  }

  private range(): string {
    const g = this.rng;
    const p = (): string => this.port();
    return g.pick([p, p, () => `${p()}:${p()}`, () => `:${p()}`, () => `${p()}:`, () => `${g.int(1, 100)}-${g.int(100, 200)}`, () => `${p()}::${p()}`])();
  }

  private word(): string {
    const g = this.rng;
    return g.pick(['KUBE-SEP-ABC', 'x', 'name with space', '"quoted"', 'a\\"b', 'é', 'a'.repeat(g.int(200, 300)), '', 'default/svc:http']);
  }

  private quote(w: string): string {
    return /[\s"]/.test(w) || w === '' ? `"${w.replace(/"/g, '\\"')}"` : w;
  }

  private iface(): string {
    return this.rng.pick(['eth0', 'veth+', 'lo', 'cni0', 'a'.repeat(this.rng.int(14, 17)), 'eth0.1', 'eth:0', '+', 'br-123']);
  }

  private match(): string {
    const g = this.rng;
    const neg = (p?: number): string => this.neg(p);
    const kinds: Array<() => string> = [
      () => `${neg()}${g.pick(['-s', '--source', '--src'])} ${this.addr()}`,
      () => `${neg()}${g.pick(['-d', '--destination', '--dst'])} ${this.addr()}`,
      () => `${neg()}${g.pick(['-i', '--in-interface'])} ${this.iface()}`,
      () => `${neg()}${g.pick(['-o', '--out-interface'])} ${this.iface()}`,
      () => (this.family === 4 ? `${neg()}-f` : `-m comment --comment f`),
      () => `-m addrtype ${neg()}--${g.pick(['src', 'dst'])}-type ${g.pick(['LOCAL', 'UNICAST', 'LOCAL,UNICAST', 'BROADCAST', 'local', 'BLACKHOLE,MULTICAST', 'NOPE', ''])}${g.chance(0.2) ? ` --limit-iface-${g.pick(['in', 'out'])}` : ''}`,
      () => `-m comment --comment ${this.quote(this.word())}`,
      () => `-m conntrack ${neg()}--ctstate ${g.pick(['NEW', 'ESTABLISHED,RELATED', 'INVALID,UNTRACKED,SNAT,DNAT', 'new', 'NEW,', 'BOGUS'])}`,
      () => `-m conntrack ${neg()}--${g.pick(['ctorigdst', 'ctorigsrc', 'ctrepldst', 'ctreplsrc'])} ${this.addr()}`,
      () => `-m conntrack ${neg()}--${g.pick(['ctorigdstport', 'ctorigsrcport', 'ctrepldstport', 'ctreplsrcport'])} ${this.range()}`,
      () => `-m conntrack --ctstatus ${g.pick(['ASSURED', 'SEEN_REPLY,EXPECTED', 'CONFIRMED', 'NONE', 'X'])}`,
      () => `-m conntrack --ctdir ${g.pick(['ORIGINAL', 'REPLY', 'original', 'BOTH'])}`,
      () => `-m conntrack ${neg()}--ctproto ${g.pick(['tcp', '6', 'udp', 'all', '0', 'foo'])}`,
      () => `-m state ${neg()}--state ${g.pick(['NEW', 'ESTABLISHED,RELATED', 'INVALID', 'UNTRACKED', 'SNAT', 'new'])}`,
      () => `-m mark ${neg()}--mark ${g.pick(['0x4000/0x4000', '5', '0x1/0xff', '0xffffffff', '0x100000000', '-1', '1/', '/1', '07'])}`,
      () => `-m connmark ${neg()}--mark ${g.pick(['0', '0/0xffff', '0x1/0xff', '5', '0x100000000', '1/2/3', '07'])}`,
      () => `-m statistic --mode random ${neg()}--probability ${g.pick(['0.5', '0.33333333349', '0.1000000000', '1', '0', '1.5', '-0.1', '0.00000000001', '0.99999999999', '1e-1', '.5', '0x1.8p-1', '0x1p-32', 'nan', 'inf', '5.', '0x1p', String(g.next())])}`,
      () => `-m statistic --mode nth ${neg(0.1)}--every ${g.pick(['1', '2', '3', '0', '100'])}${g.chance(0.6) ? ` --packet ${g.pick(['0', '1', '2', '5'])}` : ''}`,
      () => this.recent(),
      () => `-m limit --limit ${g.pick(['5/min', '100/second', '2/hour', '1/day', '3/s', '10/m', '0/s', '1000000/s', '5', 'x/s', '5/minute', '7/sec'])}${g.chance(0.5) ? ` --limit-burst ${g.pick(['5', '0', '10', '1', '10001', '-1'])}` : ''}`,
    ];
    return g.pick(kinds)();
  }

  private recent(): string {
    const g = this.rng;
    let s = `-m recent --name ${g.pick(['KUBE-SEP-ABC', 'x', 'a'.repeat(g.int(190, 210)), 'DEFAULT'])}`;
    s += ` ${g.pick(['--set', '--rcheck', '--update', '--remove', '! --rcheck', '--set --rcheck', ''])}`;
    if (g.chance(0.5)) s += ` --seconds ${g.pick(['10800', '0', '1', '-1', '4294967296'])}`;
    if (g.chance(0.3)) s += ' --reap';
    if (g.chance(0.3)) s += ` --${g.pick(['rsource', 'rdest'])}`;
    if (g.chance(0.3)) s += ` --mask ${this.family === 4 ? g.pick(['255.255.255.0', '255.0.255.0', '0.0.0.0', '255.255.255']) : 'ffff:ffff::'}`;
    if (g.chance(0.2)) s += ` --hitcount ${g.pick(['1', '20', '0', '7'])}`;
    if (g.chance(0.1)) s += ' --rttl';
    return s;
  }

  private l4(p: 'tcp' | 'udp' | 'sctp'): string[] {
    const g = this.rng;
    const out: string[] = [];
    if (g.chance(0.5)) out.push(`-m ${p}`);
    if (g.chance(0.6)) out.push(`${this.neg()}${g.pick(['--dport', '--destination-port'])} ${this.range()}`);
    if (g.chance(0.4)) out.push(`${this.neg()}${g.pick(['--sport', '--source-port'])} ${this.range()}`);
    if (p === 'tcp' && g.chance(0.3)) {
      out.push(g.chance(0.4)
        ? `${this.neg()}--syn`
        : `${this.neg()}--tcp-flags ${g.pick(['SYN,ACK', 'ALL', 'NONE', 'FIN,SYN,RST,ACK', 'syn'])} ${g.pick(['SYN', 'NONE', 'ALL', 'ACK,FIN', 'BOGUS'])}`);
    }
    return out;
  }

  private icmp(p: 'icmp' | 'icmpv6'): string[] {
    const g = this.rng;
    if (!g.chance(0.6)) return [];
    const types = p === 'icmp'
      ? ['8', 'echo-request', '3/3', 'any', 'port-unreachable', '3/256', '256', 'bogus', '0/0', 'destination-unreachable']
      : ['128', 'echo-request', '1/4', 'port-unreachable', 'any', '256'];
    return [`${g.chance(0.5) ? `-m ${p === 'icmp' ? 'icmp' : 'icmp6'} ` : ''}${this.neg()}--${p === 'icmp' ? 'icmp' : 'icmpv6'}-type ${g.pick(types)}`];
  }

  private multiport(): string {
    const g = this.rng;
    const ports = Array.from({ length: g.int(1, 16) }, () => (g.chance(0.2) ? `${this.port()}:${this.port()}` : this.port()));
    return `-m multiport ${this.neg()}--${g.pick(['dports', 'sports', 'ports', 'destination-ports', 'source-ports'])} ${ports.join(',')}`;
  }

  private target(table: TableName): string {
    const g = this.rng;
    const v6 = this.family === 6;
    const endpoint = (): string => (v6 ? `[${this.ip()}]` : this.ip());
    const common = [() => 'ACCEPT', () => 'DROP', () => 'RETURN', () => 'OTHER', () => 'NOPE',
      () => `MARK --${g.pick(['set-xmark', 'set-mark', 'or-mark', 'and-mark', 'xor-mark'])} ${g.pick(['0x4000/0x4000', '0x4000', '0x1/0xff', '0x100000000', '5', '-1', '0x8000/0x8000/1'])}`,
      () => `CONNMARK ${g.pick(['--set-mark 0x1', '--set-xmark 0x1/0xff', '--save-mark', '--restore-mark', '--save-mark --nfmask 0xff --ctmask 0xff', '--and-mark 0xf', '--or-mark 2'])}`,
      () => `LOG${g.chance(0.5) ? ` --log-prefix ${this.quote(this.word().slice(0, g.int(0, 40)))}` : ''}${g.chance(0.4) ? ` --log-level ${g.pick(['4', 'warning', 'debug', '8', 'emerg'])}` : ''}${g.chance(0.2) ? ' --log-tcp-options --log-ip-options --log-uid' : ''}`,
      () => `NFLOG${g.chance(0.5) ? ` --nflog-group ${g.pick(['0', '2', '65535', '65536'])}` : ''}${g.chance(0.4) ? ` --nflog-prefix ${this.quote(this.word().slice(0, g.int(0, 70)))}` : ''}${g.chance(0.3) ? ` --nflog-${g.pick(['range', 'size'])} ${g.pick(['0', '100'])}` : ''}${g.chance(0.3) ? ` --nflog-threshold ${g.pick(['0', '1', '5'])}` : ''}`,
      () => `REJECT${g.chance(0.7) ? ` --reject-with ${g.pick(v6
        ? ['icmp6-port-unreachable', 'tcp-reset', 'icmp6-adm-prohibited', 'adm-prohibited', 'icmp6-no-route', 'icmp-port-unreachable']
        : ['icmp-port-unreachable', 'tcp-reset', 'icmp-host-unreachable', 'icmp-net-prohibited', 'icmp-admin-prohibited', 'icmp6-port-unreachable', 'tcp-rst'])}` : ''}`,
      () => `DNAT --to-destination ${g.pick([endpoint(), `${endpoint()}:${this.range()}`, `${this.ip()}-${this.ip()}`, `:${this.port()}`])}${g.chance(0.2) ? ' --random' : ''}${g.chance(0.2) ? ' --persistent' : ''}`,
      () => `SNAT --to-source ${g.pick([endpoint(), `${endpoint()}:${this.range()}`, `${this.ip()}-${this.ip()}`])}${g.chance(0.2) ? ' --random' : ''}${g.chance(0.2) ? ' --random-fully' : ''}`,
      () => `MASQUERADE${g.chance(0.4) ? ` --to-ports ${this.range()}` : ''}${g.chance(0.3) ? ' --random-fully' : ''}${g.chance(0.2) ? ' --random' : ''}`,
      () => g.pick(['NOTRACK', 'CT --notrack']),
    ];
    const own: Record<TableName, Array<() => string>> = {
      filter: common.slice(0, 11), nat: common.slice(0, 5).concat(common.slice(11, 14)), mangle: common.slice(0, 9), raw: common.slice(0, 5).concat(common.slice(14)),
    };
    // Mostly what the table offers, sometimes any target (the kernel refuses some there).
    return g.pick(g.chance(0.85) ? own[table] : common)();
  }
}

/** Random restore scripts of commands over a few chains, as an administrator's tools write them. */
export class ScriptGen {
  private static readonly BUILTIN: Record<TableName, readonly string[]> = {
    filter: ['INPUT', 'FORWARD', 'OUTPUT'], nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
    mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'], raw: ['PREROUTING', 'OUTPUT'],
  };

  constructor(private readonly rng: Rng, readonly family: 4 | 6) {}

  script(): string {
    const g = this.rng;
    const lines: string[] = [];
    const tables = (['filter', 'nat', 'mangle', 'raw'] as const).filter(() => g.chance(0.4));
    if (tables.length === 0) tables.push(g.pick(['filter', 'nat', 'mangle', 'raw'] as const));
    for (const t of tables) {
      const builtin = ScriptGen.BUILTIN[t];
      const known = [...builtin];
      lines.push(`*${t}`);
      for (const c of builtin) if (g.chance(0.3)) lines.push(`:${c} ${t === 'nat' ? 'ACCEPT' : g.pick(['ACCEPT', 'DROP'])} [${g.int(0, 9)}:${g.int(0, 99)}]`);
      for (const c of ['A', 'B', 'C', 'KUBE-X']) {
        if (g.chance(0.4)) {
          lines.push(`:${c} - [${g.int(0, 3)}:${g.int(0, 9)}]`);
          known.push(c);
        }
      }
      // Mostly commands that can work; sometimes any chain and target (then the block may fail).
      const wild = g.chance(0.15);
      const chains = wild ? [...builtin, 'A', 'B', 'C', 'KUBE-X', 'NOPE'] : known;
      for (let i = g.int(0, 5); i > 0; i--) {
        const c = g.pick(chains);
        const body = (): string => this.body(t, wild ? [...chains, 'INPUT'] : known.filter((k) => !builtin.includes(k)));
        switch (g.pick(['-A', '-A', '-A', '-A', '-I', '-I', '-D', '-R', '-F', '-Z', '-Z', '-P', '-N', '-X', '-E', '-C'])) {
          case '-A': lines.push(`-A ${c} ${body()}`); break;
          case '-C': lines.push(`-C ${c} ${body()}`); break;
          case '-I': lines.push(`-I ${c}${g.chance(0.5) ? ` ${g.int(1, 2)}` : ''} ${body()}`); break;
          case '-D': lines.push(g.chance(0.5) ? `-D ${c} ${g.int(1, 2)}` : `-D ${c} ${body()}`); break;
          case '-R': lines.push(`-R ${c} ${g.int(1, 2)} ${body()}`); break;
          case '-F': lines.push(g.chance(0.8) ? `-F ${c}` : '-F'); break;
          case '-Z': lines.push(g.chance(0.8) ? `-Z ${c}` : '-Z'); break;
          case '-P': lines.push(`-P ${g.pick(builtin)} ${t === 'nat' ? 'ACCEPT' : g.pick(['ACCEPT', 'DROP'])}`); break;
          case '-N': {
            const n = g.pick(['D', 'E', 'F']);
            lines.push(`-N ${n}`);
            known.push(n);
            break;
          }
          case '-X': lines.push(g.chance(0.8) ? `-X ${g.pick(['D', 'E', 'F', c])}` : '-X'); break;
          default: lines.push(`-E ${c} ${g.pick(['G', 'H'])}`);
        }
      }
      lines.push('COMMIT');
    }
    return lines.join('\n') + '\n';
  }

  private body(table: TableName, jumps: readonly string[]): string {
    const g = this.rng;
    const parts: string[] = [];
    if (g.chance(0.4)) parts.push(`-s ${this.family === 4 ? `198.18.${g.int(0, 3)}.${g.int(0, 255)}${g.pick(['', '/24', '/32'])}` : `fd00::${g.int(0, 99)}${g.pick(['', '/64'])}`}`);
    if (g.chance(0.3)) parts.push(`-p tcp --dport ${g.int(1, 3)}`);
    if (g.chance(0.2)) parts.push(`-m comment --comment c${g.int(0, 3)}`);
    const restricted = table === 'nat'
      ? `DNAT --to-destination ${this.family === 4 ? '198.18.0.9' : '[fd00::9]:80'}`
      : table === 'filter' ? 'REJECT' : 'MARK --set-mark 1';
    const target = g.pick(['ACCEPT', 'DROP', 'RETURN', '', restricted, table === 'nat' ? 'MASQUERADE' : 'LOG', ...jumps]);
    if (target.startsWith('DNAT') && this.family === 6 && !parts.some((p) => p.startsWith('-p tcp'))) parts.push('-p tcp');
    if (target) parts.push(`${jumps.includes(target) && g.chance(0.3) ? '-g' : '-j'} ${target}`);
    return parts.join(' ');
  }
}
