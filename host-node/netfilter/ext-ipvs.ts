// ext-ipvs.ts — the `-m ipvs` match (extensions/libxt_ipvs.c; kernel side net/netfilter/xt_ipvs.c):
// its options, parsing with libxt_ipvs's checks and messages, the two printed forms (iptables-save
// and `iptables -L -n`) and the words the core's M_IPVS op takes. Evaluated in the core
// (assembly/netfilter/match-ipvs.ts). Never evaluates a packet.
//
// libxt_ipvs keeps one bit per option (XT_IPVS_*, in option order) in `bitmask` and `invert`; any
// option but --ipvs implies --ipvs (ipvs_mt_check), so `! --ipvs` cannot be combined with others.

import { RuleError, parseProtocol, parsePortDecimal, type ExtDef } from './ext.js';
import { listAddrMask, parseHostMask } from './addr.js';
import type { AddrMask, Family, Match } from './model.js';

// xt_ipvs.h: XT_IPVS_IPVS_PROPERTY … XT_IPVS_VPORTCTL.
export const XT_IPVS = { PROPERTY: 1, PROTO: 2, VADDR: 4, VPORT: 8, DIR: 16, METHOD: 32, VPORTCTL: 64 } as const;

/** uapi ip_vs.h IP_VS_CONN_F_*: the forwarding method numbers. */
const METHODS: Record<string, number> = { GATE: 3, IPIP: 2, MASQ: 0 };
const METHOD_NAMES: Record<number, string> = { 3: 'GATE', 2: 'IPIP', 0: 'MASQ' };

export interface IpvsMatch {
  readonly kind: 'ipvs';
  /** XT_IPVS_* bits given, and those inverted (`--vdir REPLY` is DIR inverted). */
  readonly bitmask: number;
  readonly invert: number;
  readonly l4proto: number;
  /** Kept as written (the kernel compares under the mask). */
  readonly vaddr: AddrMask | null;
  readonly vport: number;
  readonly fwdMethod: number;
  readonly vportctl: number;
}

type Mut<T> = { -readonly [K in keyof T]: T[K] };

function port(opt: string, arg: string): number {
  const p = parsePortDecimal(arg);
  if (p === null) throw new RuleError(arg, `ipvs: Bad value for "--${opt}" option: "${arg}"`);
  return p;
}

const ipvs: ExtDef<Mut<IpvsMatch>, Match> = {
  name: 'ipvs',
  opts: [
    { name: 'ipvs', id: 0, args: 0, invert: true },
    { name: 'vproto', id: 1, args: 1, invert: true },
    { name: 'vaddr', id: 2, args: 1, invert: true },
    { name: 'vport', id: 3, args: 1, invert: true },
    { name: 'vdir', id: 4, args: 1 },
    { name: 'vmethod', id: 5, args: 1, invert: true },
    { name: 'vportctl', id: 6, args: 1, invert: true },
  ],
  init: () => ({ kind: 'ipvs', bitmask: 0, invert: 0, l4proto: 0, vaddr: null, vport: 0, fwdMethod: 0, vportctl: 0 }),
  parse(s, opt, args, invert, env) {
    const arg = args[0] ?? '';
    const bit = 1 << opt.id;
    switch (opt.id) {
      case 1: {
        const p = parseProtocol(arg.toLowerCase());
        if (p === null) throw new RuleError(arg, `unknown protocol "${arg}" specified`);
        s.l4proto = p;
        break;
      }
      case 2:
        try {
          s.vaddr = parseHostMask(arg, env.family);
        } catch (e) {
          throw new RuleError(arg, typeof e === 'string' ? e : `host/network \`${arg}' not found`);
        }
        break;
      case 3: s.vport = port('vport', arg); break;
      case 4: {
        const d = arg.toUpperCase();
        if (d !== 'ORIGINAL' && d !== 'REPLY') throw new RuleError(arg, `ipvs: Bad value for "--vdir" option: "${arg}"`);
        // libxt_ipvs: REPLY is the inverted direction bit.
        s.bitmask |= bit;
        if (d === 'REPLY') s.invert |= bit; else s.invert &= ~bit;
        return;
      }
      case 5: {
        const m = METHODS[arg.toUpperCase()];
        if (m === undefined) throw new RuleError(arg, `ipvs: Bad value for "--vmethod" option: "${arg}"`);
        s.fwdMethod = m;
        break;
      }
      case 6: s.vportctl = port('vportctl', arg); break;
    }
    s.bitmask |= bit;
    if (invert) s.invert |= bit;
  },
  check(s, xflags) {
    if (xflags === 0) throw new RuleError('ipvs', 'IPVS: At least one option is required');
    if (s.bitmask & ~XT_IPVS.PROPERTY) {
      if (s.invert & XT_IPVS.PROPERTY) throw new RuleError('--ipvs', '! --ipvs cannot be together with other options');
      s.bitmask |= XT_IPVS.PROPERTY;
    }
  },
  build: (s) => s,
};

export const IPVS_MATCH_DEFS: ReadonlyMap<string, ExtDef<unknown, Match>> = new Map<string, ExtDef<unknown, Match>>([
  ['ipvs', ipvs as ExtDef<unknown, Match>],
]);

// libxt_ipvs.c ipvs_mt_dump(): save uses the prefix "--", the listing none. The protocol is printed
// as a number. libxt_ipvs prints it as "%sproto", which iptables-restore would read back as `-p`;
// we print the option's own name, "vproto", so saved text restores to the same rule.
function dump(m: IpvsMatch, prefix: string, protoName: string): string {
  const inv = (b: number) => (m.invert & b ? ' !' : '');
  let out = '';
  if (m.bitmask === XT_IPVS.PROPERTY) out += inv(XT_IPVS.PROPERTY) + ` ${prefix}ipvs`;
  if (m.bitmask & XT_IPVS.PROTO) out += inv(XT_IPVS.PROTO) + ` ${prefix}${protoName} ${m.l4proto}`;
  // ipvs_mt_dump_addr(): numeric address plus xtables_ipmask_to_numeric (nothing for a host mask).
  if (m.bitmask & XT_IPVS.VADDR && m.vaddr) out += inv(XT_IPVS.VADDR) + ` ${prefix}vaddr ${listAddrMask(m.vaddr)}`;
  if (m.bitmask & XT_IPVS.VPORT) out += inv(XT_IPVS.VPORT) + ` ${prefix}vport ${m.vport}`;
  if (m.bitmask & XT_IPVS.DIR) out += ` ${prefix}vdir ${m.invert & XT_IPVS.DIR ? 'REPLY' : 'ORIGINAL'}`;
  if (m.bitmask & XT_IPVS.METHOD) out += inv(XT_IPVS.METHOD) + ` ${prefix}vmethod ${METHOD_NAMES[m.fwdMethod] ?? 'UNKNOWN'}`;
  if (m.bitmask & XT_IPVS.VPORTCTL) out += inv(XT_IPVS.VPORTCTL) + ` ${prefix}vportctl ${m.vportctl}`;
  return out;
}

/** What follows `-m ipvs` in iptables-save output. */
export function saveIpvs(m: IpvsMatch): string {
  return dump(m, '--', 'vproto');
}

/** The match column text of `iptables -L -n` (ipvs_mt4_print). */
export function printIpvs(m: IpvsMatch): string {
  return dump(m, '', 'proto');
}

/**
 * The M_IPVS op's argument words (assembly/netfilter/match-ipvs.ts): bitmask | invert << 8 |
 * l4proto << 16 | method << 24, vport | vportctl << 16, then the address and mask (raw words, as
 * the compiler's `bswap`ped host words).
 */
export function ipvsWords(m: IpvsMatch, family: Family, toRaw: (w: number) => number): number[] {
  const addr = m.vaddr?.addr ?? [0, 0, 0, 0];
  const mask = m.vaddr?.mask ?? [0, 0, 0, 0];
  const a = family === 4 ? [addr[0]!, 0, 0, 0] : addr;
  const k = family === 4 ? [mask[0]!, 0, 0, 0] : mask;
  return [
    (m.bitmask | (m.invert << 8) | (m.l4proto << 16) | (m.fwdMethod << 24)) >>> 0,
    (m.vport | (m.vportctl << 16)) >>> 0,
    ...a.map(toRaw),
    ...k.map(toRaw),
  ];
}

/**
 * The M_PHYSDEV op's argument (xt_physdev.c physdev_mt without bridge information, the only case
 * this dataplane sees — it is never on a bridge): the match holds unless an option that needs a
 * bridge port (`--physdev-in/out`, `--physdev-is-in/out/bridged`) is given without `!`. Returns 1
 * when the match holds for every packet, 0 when for none.
 */
export function physdevHolds(m: { physIn: { invert: boolean } | null; physOut: { invert: boolean } | null;
  isIn: { invert: boolean } | null; isOut: { invert: boolean } | null; isBridged: { invert: boolean } | null }): number {
  for (const o of [m.isBridged, m.isIn, m.isOut, m.physIn, m.physOut]) if (o && !o.invert) return 0;
  return 1;
}
