// model.ts — the typed shape of a parsed iptables rule: addresses, interfaces, matches and
// targets, in the normalized form the kernel keeps (so two spellings of one rule compare equal).
// The compiler to the core reads these types; the parser (rule.ts and the ext-*.ts files) builds
// them; save.ts/list.ts print them. No behaviour lives here.
//
// Conventions:
//   * every object is immutable once built and may be shared between rulesets;
//   * addresses are `Words`: four big-endian u32 values, IPv4 in word 0 (see addr.ts);
//   * "invert" always means the `!` that iptables allows before the option;
//   * numbers are plain JS numbers (all fit in 32 bits) except counters, which are bigint.
import type { IpvsMatch } from './ext-ipvs.js';

export type Family = 4 | 6;
export type TableName = 'raw' | 'mangle' | 'nat' | 'filter' | 'security';
/** Netfilter hooks, in the kernel's numbering order (NF_INET_PRE_ROUTING = 0 …). */
export type Hook = 'PREROUTING' | 'INPUT' | 'FORWARD' | 'OUTPUT' | 'POSTROUTING';
export type Policy = 'ACCEPT' | 'DROP';

export type Words = readonly [number, number, number, number];

/** An address and mask. For -s/-d `addr` is already masked (as the kernel stores it); the
 *  conntrack address options keep it as written (the kernel compares them under the mask). */
export interface AddrMask {
  readonly family: Family;
  readonly addr: Words;
  readonly mask: Words;
  /** Prefix length of `mask`, or -1 when the mask is not contiguous (e.g. 255.0.255.0). */
  readonly prefix: number;
}

export interface AddrMatch extends AddrMask {
  readonly invert: boolean;
}

/** `-i`/`-o` (and physdev names): `name` without the trailing `+`; `wildcard` when it had one
 *  (then any interface whose name starts with `name` matches). */
export interface IfaceMatch {
  readonly name: string;
  readonly wildcard: boolean;
  readonly invert: boolean;
}

/** Inclusive port range; a single port has lo === hi. */
export interface PortRange {
  readonly lo: number;
  readonly hi: number;
}

export interface Counters {
  readonly packets: bigint;
  readonly bytes: bigint;
}

export const ZERO_COUNTERS: Counters = Object.freeze({ packets: 0n, bytes: 0n });

/** One rule as the kernel would hold it, plus the text it came from. */
export interface Rule {
  readonly family: Family;
  /**
   * The rule's words after `-A CHAIN` exactly as written in the restore text (used to render
   * the text back byte for byte). Empty for a rule that did not come from text.
   */
  readonly text: string;
  readonly src: AddrMatch | null;
  readonly dst: AddrMatch | null;
  readonly inIface: IfaceMatch | null;
  readonly outIface: IfaceMatch | null;
  /** IP protocol number from `-p`; 0 means any (`-p all` or no `-p`). */
  readonly proto: number;
  readonly protoInvert: boolean;
  /** IPv4 `-f` (second and later fragments); null when not given. */
  readonly fragment: { readonly invert: boolean } | null;
  /** Matches in the order the kernel evaluates them (the order they were loaded). */
  readonly matches: readonly Match[];
  /** null when the rule has no -j/-g: it only counts packets. */
  readonly target: Target | null;
  /** Initial counters (`[p:b]` prefix with --counters, or `-c p b`); zero otherwise. */
  readonly counters: Counters;
}

// ---- matches ---------------------------------------------------------------------------------

/** `-m tcp` (explicit or loaded by `-p tcp`). Ports default to the full range 0:65535. */
export interface TcpMatch {
  readonly kind: 'tcp';
  readonly sport: PortRange;
  readonly sportInvert: boolean;
  readonly dport: PortRange;
  readonly dportInvert: boolean;
  /** `--tcp-flags mask comp` / `--syn`: (flags & mask) == comp. FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32. */
  readonly flags: { readonly mask: number; readonly comp: number; readonly invert: boolean } | null;
  /** `--tcp-option n`: the packet carries TCP option kind n. */
  readonly option: { readonly kind: number; readonly invert: boolean } | null;
}

export interface UdpMatch {
  readonly kind: 'udp';
  readonly sport: PortRange;
  readonly sportInvert: boolean;
  readonly dport: PortRange;
  readonly dportInvert: boolean;
}

/** `-m sctp`: ports only when given (the kernel keeps a flag per port option). */
export interface SctpMatch {
  readonly kind: 'sctp';
  readonly sport: { readonly range: PortRange; readonly invert: boolean } | null;
  readonly dport: { readonly range: PortRange; readonly invert: boolean } | null;
}

/** `-m icmp --icmp-type` (IPv4) or `-m icmp6 --icmpv6-type` (IPv6). type 255 with codes 0–255
 *  is `any` (IPv4 only). */
export interface IcmpMatch {
  readonly kind: 'icmp' | 'icmp6';
  readonly type: number;
  readonly codeMin: number;
  readonly codeMax: number;
  readonly invert: boolean;
}

/** `-m multiport`: up to 15 ports; a range uses two of the 15 slots. */
export interface MultiportMatch {
  readonly kind: 'multiport';
  /** `--sports` = 'src', `--dports` = 'dst', `--ports` = 'either' (source or destination). */
  readonly dir: 'src' | 'dst' | 'either';
  readonly ports: readonly PortRange[];
  readonly invert: boolean;
}

export interface CommentMatch {
  readonly kind: 'comment';
  /** At most 255 characters (longer comments are cut, as the kernel struct holds 256 bytes). */
  readonly text: string;
}

/** Route types of `-m addrtype`, in the kernel's bit order (RTN_UNSPEC = bit 0 …). */
export type AddrType =
  | 'UNSPEC' | 'UNICAST' | 'LOCAL' | 'BROADCAST' | 'ANYCAST' | 'MULTICAST'
  | 'BLACKHOLE' | 'UNREACHABLE' | 'PROHIBIT' | 'THROW' | 'NAT' | 'XRESOLVE';

export interface AddrtypeMatch {
  readonly kind: 'addrtype';
  /** Empty when `--src-type` was not given. */
  readonly srcTypes: readonly AddrType[];
  readonly srcInvert: boolean;
  readonly dstTypes: readonly AddrType[];
  readonly dstInvert: boolean;
  /** `--limit-iface-in` / `--limit-iface-out`: look the type up on that interface only. */
  readonly limitIfaceIn: boolean;
  readonly limitIfaceOut: boolean;
}

export type CtState = 'INVALID' | 'NEW' | 'RELATED' | 'ESTABLISHED' | 'UNTRACKED' | 'SNAT' | 'DNAT';
export type CtStatus = 'EXPECTED' | 'SEEN_REPLY' | 'ASSURED' | 'CONFIRMED';

export interface InvPortRange {
  readonly range: PortRange;
  readonly invert: boolean;
}

/** `-m conntrack`; each part is null when its option was not given. */
export interface ConntrackMatch {
  readonly kind: 'conntrack';
  /** States in print order; empty list never occurs (an empty --ctstate is an error). */
  readonly state: { readonly states: readonly CtState[]; readonly invert: boolean } | null;
  readonly proto: { readonly proto: number; readonly invert: boolean } | null;
  readonly origSrc: AddrMatch | null;
  readonly origDst: AddrMatch | null;
  readonly replSrc: AddrMatch | null;
  readonly replDst: AddrMatch | null;
  readonly origSrcPort: InvPortRange | null;
  readonly origDstPort: InvPortRange | null;
  readonly replSrcPort: InvPortRange | null;
  readonly replDstPort: InvPortRange | null;
  /** `--ctstatus`; an empty list is `NONE` (no status bit set). */
  readonly status: { readonly statuses: readonly CtStatus[]; readonly invert: boolean } | null;
  readonly expire: { readonly min: number; readonly max: number; readonly invert: boolean } | null;
  readonly dir: 'ORIGINAL' | 'REPLY' | null;
}

/** `-m state --state` (same meaning as `-m conntrack --ctstate`, kept apart to render back). */
export interface StateMatch {
  readonly kind: 'state';
  readonly states: readonly CtState[];
  readonly invert: boolean;
}

/** `-m mark --mark value[/mask]`: (skb mark & mask) == value. */
export interface MarkMatch {
  readonly kind: 'mark';
  readonly value: number;
  readonly mask: number;
  readonly invert: boolean;
}

/** `-m connmark --mark value[/mask]`: (conntrack mark & mask) == value; no conntrack entry never matches. */
export interface ConnmarkMatch {
  readonly kind: 'connmark';
  readonly value: number;
  readonly mask: number;
  readonly invert: boolean;
}

/** `-m statistic`. Random mode keeps the kernel's fixed-point probability. */
export type StatisticMatch =
  | {
      readonly kind: 'statistic';
      readonly mode: 'random';
      /** round(p × 2^31): the packet matches when a random u31 is below it. */
      readonly probabilityRaw: number;
      /** probabilityRaw / 2^31, the value iptables prints. */
      readonly probability: number;
      readonly invert: boolean;
    }
  | {
      readonly kind: 'statistic';
      readonly mode: 'nth';
      /** Match one packet of every `every`, the `packet`-th (0-based). */
      readonly every: number;
      readonly packet: number;
      readonly invert: boolean;
    };

/** `-m recent`: kube-proxy's session affinity (`--set` in KUBE-SEP, `--rcheck` in KUBE-SVC). */
export interface RecentMatch {
  readonly kind: 'recent';
  readonly op: 'set' | 'rcheck' | 'update' | 'remove';
  readonly invert: boolean;
  /** List name; `DEFAULT` when not given. */
  readonly name: string;
  /** 0 when not given. */
  readonly seconds: number;
  readonly reap: boolean;
  /** 0 when not given. */
  readonly hitcount: number;
  readonly rttl: boolean;
  /** Which address is recorded/looked up: `--rsource` (default) or `--rdest`. */
  readonly side: 'source' | 'dest';
  /** `--mask`: the address is masked with this before use; all ones by default. */
  readonly mask: Words;
}

/** `-m set --match-set NAME dir[,dir…]` (ipset lookup; directions per set dimension). */
export interface SetMatch {
  readonly kind: 'set';
  readonly name: string;
  readonly dirs: readonly ('src' | 'dst')[];
  readonly invert: boolean;
  /** `--return-nomatch`. */
  readonly returnNomatch: boolean;
}

export interface NfacctMatch {
  readonly kind: 'nfacct';
  /** Name of the extended-accounting object counting the packets. */
  readonly name: string;
}

/** `-m limit`: token bucket. */
export interface LimitMatch {
  readonly kind: 'limit';
  /** Kernel units: 1/10000 s between packets (XT_LIMIT_SCALE); rate per second = 10000 / avg. */
  readonly avg: number;
  readonly burst: number;
}

export interface PhysdevMatch {
  readonly kind: 'physdev';
  readonly physIn: IfaceMatch | null;
  readonly physOut: IfaceMatch | null;
  readonly isIn: { readonly invert: boolean } | null;
  readonly isOut: { readonly invert: boolean } | null;
  readonly isBridged: { readonly invert: boolean } | null;
}

export type { IpvsMatch };

export type Match =
  | TcpMatch | UdpMatch | SctpMatch | IcmpMatch | MultiportMatch | CommentMatch | AddrtypeMatch
  | ConntrackMatch | StateMatch | MarkMatch | ConnmarkMatch | StatisticMatch | RecentMatch | SetMatch
  | NfacctMatch | LimitMatch | PhysdevMatch | IpvsMatch;

// ---- targets ---------------------------------------------------------------------------------

/** A verdict that ends the rule walk (or RETURN, which ends the current chain). */
export interface VerdictTarget {
  readonly kind: 'ACCEPT' | 'DROP' | 'RETURN' | 'QUEUE';
}

/** `-j CHAIN` (call, comes back) or `-g CHAIN` (goto: RETURN from CHAIN skips this chain). */
export interface JumpTarget {
  readonly kind: 'jump';
  readonly chain: string;
  readonly goto: boolean;
}

export type RejectWith =
  | 'icmp-net-unreachable' | 'icmp-host-unreachable' | 'icmp-proto-unreachable'
  | 'icmp-port-unreachable' | 'icmp-net-prohibited' | 'icmp-host-prohibited'
  | 'icmp-admin-prohibited' | 'tcp-reset'
  | 'icmp6-no-route' | 'icmp6-adm-prohibited' | 'icmp6-addr-unreachable'
  | 'icmp6-port-unreachable' | 'icmp6-policy-fail' | 'icmp6-reject-route';

export interface RejectTarget {
  readonly kind: 'REJECT';
  /** Default icmp-port-unreachable (IPv4) / icmp6-port-unreachable (IPv6). */
  readonly with: RejectWith;
}

/** An address range and/or port range of a NAT target. */
export interface NatRange {
  /** null when only ports were given (`:80`). */
  readonly addrMin: Words | null;
  readonly addrMax: Words | null;
  /** null when no port was given. */
  readonly ports: PortRange | null;
}

export interface DnatTarget {
  readonly kind: 'DNAT';
  readonly to: NatRange;
  readonly random: boolean;
  readonly persistent: boolean;
}

export interface SnatTarget {
  readonly kind: 'SNAT';
  readonly to: NatRange;
  readonly random: boolean;
  readonly randomFully: boolean;
  readonly persistent: boolean;
}

export interface MasqueradeTarget {
  readonly kind: 'MASQUERADE';
  readonly ports: PortRange | null;
  readonly random: boolean;
  readonly randomFully: boolean;
}

export interface RedirectTarget {
  readonly kind: 'REDIRECT';
  readonly ports: PortRange | null;
  readonly random: boolean;
}

/** `-j MARK`, every spelling normalized: new mark = (mark & ~mask) ^ value. */
export interface MarkTarget {
  readonly kind: 'MARK';
  readonly value: number;
  readonly mask: number;
}

export type ConnmarkTarget =
  | {
      readonly kind: 'CONNMARK';
      /** ctmark = (ctmark & ~mask) ^ value (every set/and/or/xor spelling). */
      readonly mode: 'set';
      readonly value: number;
      readonly mask: number;
    }
  | {
      readonly kind: 'CONNMARK';
      /** save: ctmark = (ctmark & ~ctmask) ^ (mark & nfmask); restore the other way round. */
      readonly mode: 'save' | 'restore';
      readonly nfmask: number;
      readonly ctmask: number;
    };

export interface LogTarget {
  readonly kind: 'LOG';
  /** syslog level 0–7, default 4 (warning). */
  readonly level: number;
  /** At most 29 characters. */
  readonly prefix: string;
  /** XT_LOG_* bits: 1 tcp-sequence, 2 tcp-options, 4 ip-options, 8 uid, 32 macdecode. */
  readonly flags: number;
}

export interface NflogTarget {
  readonly kind: 'NFLOG';
  readonly group: number;
  readonly prefix: string;
  /** `--nflog-size` bytes to copy; null when not given. */
  readonly size: number | null;
  /** `--nflog-range`: kept and printed, never used (the kernel never honoured it); 0 when not given. */
  readonly range: number;
  /** 0 (XT_NFLOG_DEFAULT_THRESHOLD) when not given. */
  readonly threshold: number;
}

/** `-j CT --notrack` or its alias `-j NOTRACK` (raw table only). */
export interface CtTarget {
  readonly kind: 'CT';
  readonly notrack: true;
  /** True when written as `-j NOTRACK` (kept to render it back the same way). */
  readonly alias: boolean;
}

export type Target =
  | VerdictTarget | JumpTarget | RejectTarget | DnatTarget | SnatTarget | MasqueradeTarget
  | RedirectTarget | MarkTarget | ConnmarkTarget | LogTarget | NflogTarget | CtTarget;
