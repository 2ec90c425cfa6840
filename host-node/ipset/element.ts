// ipset/element.ts — set elements in text: parsing the ADD-ENTRY / DEL-ENTRY / TEST-ENTRY forms of
// each type the way ipset 7.x reads them (IPv4 ranges and CIDRs expand to hosts or CIDR blocks,
// port ranges to ports; `[proto:]port` with protocol names, ICMP code names, service names), and
// printing them back as `ipset list` / `save` do. One element is the key the core stores
// (assembly/ipset/format.ts); ranges are expanded lazily so a huge range fails on maxelem without
// being built. Pure; errors are IpsetError with ipset's wording.
import { type Addr, parseAddr, formatAddr, masked, isZero, v4ToNum, v4Hosts, v4RangeToCidrs, compareAddr } from './addr.js';
import {
  protoByNameOrNumber, protoName, protoWithPorts, icmpByName, icmpText, serviceByNameOrNull,
  P_TCP, P_UDP, P_ICMP, P_ICMPV6,
} from './proto.js';
import { type TypeDef, type Dim } from './types.js';
import { syntax, syntaxLines, kernel, MSG } from './errors.js';

export interface Element {
  /** ip / net (masked) of the first dimension; empty for bitmap:port. */
  a: Addr;
  /** prefix length of the net part (hash:net: a; hash:ip,port,net: b); 0 for other types. */
  cidr: number;
  proto: number;
  port: number;
  /** ip2 / net2 (masked) of the third dimension, else null. */
  b: Addr | null;
}

export type Cmd = 'add' | 'del' | 'test';

/** A parsed entry: one element, or a range that expands to several. */
export interface Entry {
  readonly count: number;
  elements(): Iterable<Element>;
  /**
   * A test entry of a net type as ipset echoes it: the network's address as given (unmasked),
   * its prefix length unless a host's. A net test with /0 finds nothing (ipset answers "NOT in set").
   */
  readonly echo?: string;
}

const ORD = ['First', 'Second', 'Third'];

function num(s: string, max: number, lo = 0): number {
  if (!/^-?\d+$/.test(s) && !/^0x[0-9a-fA-F]+$/.test(s)) throw syntax(`'${s}' is invalid as number`, s);
  const n = Number(s);
  if (n < lo || n > max) throw syntax(`'${s}' is out of range ${lo}-${max}`, s);
  return n;
}

function strip(s: string): string {
  return s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
}

function addrOrFail(text: string, family: 4 | 6): Addr {
  const a = parseAddr(strip(text), family);
  if (!a) throw syntax(`cannot parse ${text}: resolving to IPv${family} address failed`, text);
  return a;
}

interface AddrPart {
  from: Addr;
  /** Inclusive end of an IPv4 range (from-to or a CIDR of hosts), else null. */
  to: Addr | null;
  /** An explicit /cidr, else null. */
  cidr: number | null;
}

// ip | ip/cidr | from-to (from-to only for IPv4).
function addrPart(text: string, family: 4 | 6): AddrPart {
  const host = family === 4 ? 32 : 128;
  const dash = family === 4 ? text.indexOf('-') : -1;
  const slash = text.indexOf('/');
  // A prefix length is read first: `198.18.0.1/-1` is a bad length, not a range.
  if (dash > 0 && (slash < 0 || dash < slash)) {
    const from = addrOrFail(text.slice(0, dash), 4);
    const to = addrOrFail(text.slice(dash + 1), 4);
    return compareAddr(from, to) <= 0 ? { from, to, cidr: null } : { from: to, to: from, cidr: null };
  }
  if (slash < 0) return { from: addrOrFail(text, family), to: null, cidr: null };
  const from = addrOrFail(text.slice(0, slash), family);
  const c = text.slice(slash + 1);
  if (!/^-?\d+$/.test(c)) throw syntax(`'${c}' is invalid as number`, c);
  if (Number(c) < 0) throw syntax(`'${c}' is out of range 0-255`, c);
  const cidr = num(c, host);
  return { from, to: null, cidr };
}

interface PortPart { proto: number; lo: number; hi: number; ranged?: boolean }

function portToken(tok: string, proto: number): number {
  const s = strip(tok);
  // strtoul(): a minus sign wraps the number around, far past any port.
  if (/^-?\d+$/.test(s)) {
    const n = s.startsWith('-') ? Infinity : Number(s);
    if (n > 65535) throw syntaxLines([`Syntax error: '${s}' is out of range 0-65535`, `Syntax error: '${protoName(proto)}' is invalid as number`, `cannot parse '${s}' as a ${protoName(proto)} port`], tok);
    return n;
  }
  const svc = serviceByNameOrNull(s);
  if (svc === null) {
    throw syntaxLines([`Syntax error: '${s}' is invalid as number`, `Syntax error: '${protoName(proto)}' is invalid as number`, `cannot parse '${s}' as a ${protoName(proto)} port`], tok);
  }
  return svc;
}

// [proto:]port[-port] | icmp:name|type/code | icmpv6:… | proto:0.
function portPart(text: string, family: 4 | 6, cmd: Cmd): PortPart {
  const colon = text.indexOf(':');
  let proto = P_TCP;
  let rest = text;
  if (colon >= 0 && colon + 1 < text.length) {
    const pname = text.slice(0, colon);
    rest = text.slice(colon + 1);
    const p = protoByNameOrNumber(pname);
    if (p === null) throw syntax(`cannot parse '${pname}' as a protocol`, pname);
    if (p === 0) {
      if (!/^\d+$/.test(pname)) throw syntax(`Unsupported protocol '${pname}'`, pname);
      if (rest !== '0') throw syntax(`Protocol ${pname} can be used with pseudo port value 0 only.`, text);
      throw kernel(MSG.invalidProto, pname);
    }
    proto = p;
  }
  if (proto === P_ICMP || proto === P_ICMPV6) {
    const v6 = proto === P_ICMPV6;
    // ipset also reports the half-parsed command it gave up on.
    // In a restore ipset 7.17 prints only the second line, numbered.
    const wrong = (first: string) => syntaxLines([first, `Invalid ${cmd} command: missing setname`], text).inRestore(`Invalid ${cmd} command: missing setname`);
    if (v6 && family !== 6) throw wrong('Syntax error: Protocol ICMPv6 can be used with family inet6 only');
    if (!v6 && family !== 4) throw wrong('Syntax error: Protocol ICMP can be used with family inet only');
    const named = icmpByName(rest, v6);
    if (named !== null) return { proto, lo: named, hi: named };
    const m = /^([^/]+)\/([^/]+)$/.exec(rest);
    if (!m) throw kernel(`Cannot parse ${rest} as an ICMP${v6 ? 'v6' : ''} type/code.`, rest);
    const t = num(m[1]!, 255), c = num(m[2]!, 255);
    return { proto, lo: (t << 8) | c, hi: (t << 8) | c };
  }
  if (!protoWithPorts(proto)) {
    if (rest !== '0') throw syntax(`Protocol ${protoName(proto)} can be used with pseudo port value 0 only.`, text);
    return { proto, lo: 0, hi: 0 };
  }
  if (colon >= 0 && colon + 1 >= text.length) rest = text;   // "udp:" reads as a tcp port token
  const dash = rest.indexOf('-', rest.startsWith('[') ? rest.indexOf(']') : 0);
  if (dash > 0) {
    const a = portToken(rest.slice(0, dash), proto), b = portToken(rest.slice(dash + 1), proto);
    return { proto, lo: Math.min(a, b), hi: Math.max(a, b), ranged: true };
  }
  const p = portToken(rest, proto);
  return { proto, lo: p, hi: p };
}

// bitmap:port: [proto:]port[-port], proto only tcp or udp and never stored.
function bitmapPart(text: string): PortPart {
  const colon = text.indexOf(':');
  let proto = P_TCP, rest = text;
  if (colon >= 0) {
    const p = protoByNameOrNumber(text.slice(0, colon));
    if (p === null) throw syntax(`cannot parse '${text.slice(0, colon)}' as a protocol`, text);
    if (p !== P_TCP && p !== P_UDP) throw syntax('Only protocols TCP and UDP are valid', text);
    proto = p;
    rest = text.slice(colon + 1);
  }
  const dash = rest.indexOf('-', rest.startsWith('[') ? rest.indexOf(']') : 0);
  if (dash > 0) {
    const a = portToken(rest.slice(0, dash), proto), b = portToken(rest.slice(dash + 1), proto);
    return { proto: 0, lo: Math.min(a, b), hi: Math.max(a, b), ranged: true };
  }
  const p = portToken(rest, proto);
  return { proto: 0, lo: p, hi: p };
}

function hostCount(p: AddrPart, family: 4 | 6): number {
  if (family === 6) return 1;
  if (p.to) return v4ToNum(p.to) - v4ToNum(p.from) + 1;
  if (p.cidr !== null) return 2 ** (32 - p.cidr);
  return 1;
}

// The hosts an ip part stands for (IPv4 ranges and CIDRs expand; kernel *_uadt ip..ip_to loops).
function* hosts(p: AddrPart, family: 4 | 6): Generator<Addr> {
  if (family === 6 || (!p.to && p.cidr === null)) { yield p.from; return; }
  if (p.to) { yield* v4Hosts(v4ToNum(p.from), v4ToNum(p.to)); return; }
  const base = v4ToNum(masked(p.from, p.cidr!));
  yield* v4Hosts(base, base + 2 ** (32 - p.cidr!) - 1);
}

/** Parses the entry of `cmd` for a set of type `def` and `family` (4/6; ignored for bitmap:port). */
export function parseEntry(def: TypeDef, family: 4 | 6, text: string, cmd: Cmd): Entry {
  const parts = text.split(',');
  const dims = def.dims;
  if (parts.length > dims.length) {
    const what = ['none', 'one', 'two'][dims.length - 1];
    const seps = ['Elem separator', 'Two elem separators', 'Three elem separators'][parts.length - 2] ?? `${parts.length - 1} elem separators`;
    throw syntax(`${seps} in ${text}, but settype ${def.name} supports ${what}.`, text);
  }
  if (parts.length < dims.length) throw syntax(`${ORD[parts.length]} element is missing from ${text}.`, text);
  const host = family === 4 ? 32 : 128;
  let ip: AddrPart | null = null, port: PortPart | null = null, second: AddrPart | null = null;
  let ipCidr = false;   // the first address was written with a /cidr (IPv6 forgets it below)
  dims.forEach((d: Dim, i) => {
    const t = parts[i]!;
    if (d === 'ip') {
      ip = addrPart(t, family);
      ipCidr = ip.cidr !== null;
      if (ip.cidr === 0) throw kernel(MSG.cidr, t);
      if (family === 6 && ip.cidr !== null && ip.cidr !== 128) throw syntax(`plain IP address must be supplied: ${t}`, t);
      if (family === 6) ip.cidr = null;
    } else if (d === 'ip2') {
      second = addrPart(t, family);
      if (second.to || (second.cidr !== null && second.cidr !== host)) throw syntax(`plain IP address must be supplied: ${t}`, t);
      second.cidr = null;
    } else if (d === 'net' || d === 'net2') {
      if (family === 6 && t.includes('-')) throw syntax(`IP address or IP/cidr must be specified: ${t}`, t);
      const n = addrPart(t, family);
      if (n.cidr === 0 && cmd !== 'test') throw kernel(MSG.cidr, t);
      if (d === 'net') ip = n; else second = n;
    } else if (d === 'port') {
      port = portPart(t, family, cmd);
    } else {
      port = bitmapPart(t);
    }
  });
  const ipP = ip as AddrPart | null, portP = port as PortPart | null, secP = second as AddrPart | null;

  if (def.name === 'bitmap:port') {
    const pp = portP!;
    // A range written is refused even with equal ends (ipset sees the option, not the span).
    if (cmd === 'test' && pp.ranged) throw kernel(`FROM-TO port range is not allowed in command test with set type ${def.name} and family unspec`, text);
    return {
      count: pp.hi - pp.lo + 1,
      *elements() { for (let p = pp.lo; p <= pp.hi; p++) yield { a: new Uint8Array(0), cidr: 0, proto: 0, port: p, b: null }; },
    };
  }

  const netDim = def.dims.includes('net') ? 'a' : def.dims.includes('net2') ? 'b' : null;
  const netP = netDim === 'a' ? ipP : netDim === 'b' ? secP : null;
  if (cmd === 'test') {
    const fam = `family inet${family === 6 ? '6' : ''}`;
    // hash:ip tests the first address of a range (hash_ip4_uadt() tests before it reads IP_TO).
    if ((def.name !== 'hash:ip' && (ipP?.to ?? null) !== null) || (netP?.to ?? null) !== null) {
      throw kernel(`FROM-TO IP range is not allowed in command test with set type ${def.name} and ${fam}`, text);
    }
    if (netDim !== 'a' && ipCidr) {
      throw kernel(`IP/CIDR range is not allowed in command test with set type ${def.name} and ${fam}`, text);
    }
    if (portP && portP.ranged) {
      throw kernel(`FROM-TO port range is not allowed in command test with set type ${def.name} and ${fam}`, text);
    }
  }

  const netEcho = (n: AddrPart): string => (n.cidr === null || n.cidr === host ? formatAddr(n.from) : `${formatAddr(n.from)}/${n.cidr}`);
  const echo = cmd !== 'test' ? undefined
    : def.name === 'hash:net' ? netEcho(ipP!)
    : def.name === 'hash:ip,port,net' ? `${formatAddr(ipP!.from)},${portText(portP!.proto, portP!.lo)},${netEcho(secP!)}`
    : undefined;

  // The net part: one block (ip[/cidr]) or, for an IPv4 from-to, the CIDR blocks covering it.
  const netBlocks = (n: AddrPart): { count: number; blocks: () => Iterable<[Addr, number]> } => {
    if (n.to) {
      const f = v4ToNum(n.from), l = v4ToNum(n.to);
      let k = 0;
      for (const _ of v4RangeToCidrs(f, l)) k++;
      return { count: k, blocks: () => v4RangeToCidrs(f, l) };
    }
    const c = n.cidr ?? host;
    return { count: 1, blocks: () => [[masked(n.from, c), c]] };
  };

  if (def.name === 'hash:net') {
    const nb = netBlocks(ipP!);
    return {
      echo,
      count: nb.count,
      *elements() { for (const [a, c] of nb.blocks()) yield { a, cidr: c, proto: 0, port: 0, b: null }; },
    };
  }

  const ipCount = hostCount(ipP!, family);
  const ports = portP ? portP.hi - portP.lo + 1 : 1;
  const nb = def.name === 'hash:ip,port,net' ? netBlocks(secP!) : null;
  const ipPart = ipP!;
  if (ipCount === 1 && ports === 1 && nb === null) {
    // One element (every entry kube-proxy writes): no generators to build and run.
    const a = family === 6 || (!ipPart.to && ipPart.cidr === null) ? ipPart.from : hosts(ipPart, family).next().value as Addr;
    const one: Element[] = [{ a, cidr: 0, proto: portP ? portP.proto : 0, port: portP ? portP.lo : 0, b: secP ? secP.from : null }];
    return { count: 1, elements: () => one };
  }
  return {
    echo,
    count: ipCount * ports * (nb ? nb.count : 1),
    *elements() {
      for (const a of hosts(ipPart, family)) {
        for (let p = portP ? portP.lo : 0; p <= (portP ? portP.hi : 0); p++) {
          if (nb) {
            for (const [b, c] of nb.blocks()) yield { a, cidr: c, proto: portP!.proto, port: p, b };
          } else {
            yield { a, cidr: 0, proto: portP ? portP.proto : 0, port: p, b: secP ? secP.from : null };
          }
        }
      }
    },
  };
}

/** Is `e` a null element a hash:ip set refuses (ip_set_hash_ip.c: a zero address)? */
export function isNullElement(def: TypeDef, e: Element): boolean {
  return def.name === 'hash:ip' && isZero(e.a);
}

/**
 * hash:ip,port refuses an add or del whose address is all zeros with EINVAL (a test of it just
 * finds nothing); hash:ip,port,ip and the net types take it. Seen with ipset 7.17 on Linux 6.18.
 */
export function isInvalidZero(def: TypeDef, e: Element): boolean {
  return def.name === 'hash:ip,port' && isZero(e.a);
}

/** Would a net type search for this test element (a host-length net part)? */
export function isHostTest(def: TypeDef, family: 4 | 6, e: Element): boolean {
  return def.nomatch && e.cidr === (family === 4 ? 32 : 128);
}

function portText(proto: number, port: number): string {
  if (proto === P_ICMP) return `icmp:${icmpText(port, false)}`;
  if (proto === P_ICMPV6) return `${protoName(proto)}:${icmpText(port, true)}`;
  return `${protoName(proto)}:${port}`;
}

function netText(a: Addr, cidr: number): string {
  return cidr === a.length * 8 ? formatAddr(a) : `${formatAddr(a)}/${cidr}`;
}

/** The element as `ipset list` prints it. */
export function formatElement(def: TypeDef, e: Element): string {
  switch (def.name) {
    case 'bitmap:port': return String(e.port);
    case 'hash:ip': return formatAddr(e.a);
    case 'hash:net': return netText(e.a, e.cidr);
    case 'hash:ip,port': return `${formatAddr(e.a)},${portText(e.proto, e.port)}`;
    case 'hash:ip,port,ip': return `${formatAddr(e.a)},${portText(e.proto, e.port)},${formatAddr(e.b!)}`;
    case 'hash:ip,port,net': return `${formatAddr(e.a)},${portText(e.proto, e.port)},${netText(e.b!, e.cidr)}`;
  }
}

/** A string that identifies the element's key (map key in the host's mirror of a set). */
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
function hex(a: Addr | null): string {
  if (!a) return '-';
  let s = '';
  for (let i = 0; i < a.length; i++) s += HEX[a[i]!];
  return s;
}

export function elementKey(e: Element): string {
  return `${hex(e.a)}/${e.cidr}/${e.proto}/${e.port}/${hex(e.b)}`;
}

/** Order for listing: addresses numerically, then protocol, port, second address, prefix. */
export function compareElements(x: Element, y: Element): number {
  return compareAddr(x.a, y.a) || x.cidr - y.cidr || x.proto - y.proto || x.port - y.port ||
    (x.b && y.b ? compareAddr(x.b, y.b) : 0);
}

