// object-reader.ts — reads the fields of one raw (decoded from YAML or JSON, or handed in) Kubernetes
// object with kube-proxy's validation: strings, integers in range, enums, IPs, lists and mappings,
// each bad field collected as an issue under its path, with defaults for absent fields, and the
// shared frozen stand-ins decoded objects use for absent values. Never decides what an object
// means (objects.ts reads each kind) and never throws on bad input.
import type { EndpointPort, Protocol, ServicePort } from './objects.js';
import { ipFamily } from './ip.js';

export type Seg = string | number;
export const pathText = (p: Seg[]): string =>
  p.reduce<string>((acc, s) => (typeof s === 'number' ? `${acc}[${s}]` : acc === '' ? s : `${acc}.${s}`), '');

/**
 * A wrong value as an issue quotes it: text (cut at 100 characters) and numbers as written, a list
 * or mapping by its kind alone (printing one recurses per level, and JavaScript callers or a watch
 * event can hand in one nested past the stack), any other kind by name (JSON has no BigInt).
 */
function shown(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 100 ? `${v.slice(0, 100)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return 'a list';
  return v === null ? 'null' : typeof v === 'object' ? 'a mapping' : typeof v;
}

/**
 * Reads one raw object; collects issues with paths relative to the object. A field's path is
 * `at` plus an optional last `key`, joined only when there is something to report (a full sync
 * reads hundreds of thousands of fields: no path is built for a good one).
 */
export class Reader {
  readonly issues: { severity: 'error' | 'warning'; path: Seg[]; message: string }[] = [];
  failed = false;
  /** Port lists of this call by their values; forgotten by endCall (nothing is shared across calls). */
  private readonly lists = new Map<string, unknown[]>();
  /**
   * The port lists of the last Service and slice that shared theirs: the next object's raw ports
   * are compared with them before anything is decoded (a list of 20,000 objects mostly repeats
   * the port list of the one before).
   */
  lastServicePorts: ServicePort[] | null = null;
  lastEndpointPorts: EndpointPort[] | null = null;
  /**
   * The names that passed name() in each field whose names repeat from object to object (a slice's
   * endpoints take turns among the nodes, so not only the last one), forgotten past SEEN_NAMES.
   */
  private readonly seenNames: Record<RepeatedName, Set<string>> = { namespace: new Set(), port: new Set(), node: new Set() };
  endCall(): void {
    this.lists.clear();
    this.lastServicePorts = this.lastEndpointPorts = null;
  }
  /**
   * `list`, or an equal one (named by `key`) this call decoded before, frozen with its elements: a
   * list of 20,000 objects repeats a few port lists thousands of times; decoded objects are never written to.
   */
  sharedList<T extends object>(key: string, list: T[]): T[] {
    const had = this.lists.get(key);
    if (had !== undefined) return had as T[];
    for (let i = 0; i < list.length; i++) Object.freeze(list[i]);
    this.lists.set(key, Object.freeze(list) as T[]);
    return list;
  }
  /** Ready for the next object (one Reader serves a whole list). */
  reset(): this {
    // Most objects have no issue: no call of the length setter for them.
    if (this.issues.length !== 0) this.issues.length = 0;
    this.failed = false;
    return this;
  }
  // Paths are copied when kept: callers may pass shared constant paths.
  error(at: Seg[], message: string, key?: Seg): void {
    this.failed = true;
    this.issues.push({ severity: 'error', path: key === undefined ? [...at] : [...at, key], message });
  }
  warn(at: Seg[], message: string, key?: Seg): void {
    this.issues.push({ severity: 'warning', path: key === undefined ? [...at] : [...at, key], message });
  }

  obj(v: unknown, at: Seg[], key?: Seg): Record<string, unknown> {
    if (v === undefined || v === null) return EMPTY;
    if (typeof v !== 'object' || Array.isArray(v)) { this.error(at, 'must be a mapping', key); return EMPTY; }
    return v as Record<string, unknown>;
  }
  list(v: unknown, at: Seg[], key?: Seg): unknown[] {
    if (v === undefined || v === null) return NONE;
    if (!Array.isArray(v)) { this.error(at, 'must be a list', key); return NONE; }
    return dense(v);
  }
  str(v: unknown, at: Seg[], key?: Seg, dflt = ''): string {
    if (typeof v === 'string') return v;
    if (v === undefined || v === null) return dflt;
    this.error(at, `must be a string, got ${shown(v)}`, key);
    return dflt;
  }
  /** Each element of the list at `v` through `read`; absent or empty lists share one frozen []. */
  mapList<T>(v: unknown, at: Seg[], key: Seg, read: (v: unknown, i: number) => T): T[] {
    const list = this.list(v, at, key);
    return list.length === 0 ? (NONE as T[]) : list.map(read);
  }
  optStr(v: unknown, at: Seg[], key?: Seg): string | null {
    return v === undefined || v === null ? null : this.str(v, at, key);
  }
  bool(v: unknown, at: Seg[], key?: Seg): boolean | null {
    if (typeof v === 'boolean') return v;
    if (v === undefined || v === null) return null;
    this.error(at, `must be true or false, got ${shown(v)}`, key);
    return null;
  }
  int(v: unknown, at: Seg[], key: Seg | undefined, min: number, max: number, dflt: number): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v)) { this.error(at, `must be an integer, got ${shown(v)}`, key); return dflt; }
    if (v < min || v > max) { this.error(at, `${v} is out of range ${min}-${max}`, key); return dflt; }
    return v;
  }
  oneOf<T extends string>(v: unknown, at: Seg[], key: Seg | undefined, allowed: readonly T[], dflt: T): T {
    const s = this.str(v, at, key, dflt);
    if (!(allowed as readonly string[]).includes(s)) { this.error(at, `unknown value ${JSON.stringify(s)} (expected ${allowed.join(', ')})`, key); return dflt; }
    return s as T;
  }
  ip(v: unknown, at: Seg[], key?: Seg): string {
    const s = this.str(v, at, key);
    if (ipFamily(s) === null) this.error(at, `invalid IP address ${JSON.stringify(s)}`, key);
    return s;
  }
  /**
   * An address a Service is reached at (cluster IP, external IP, load-balancer IP): also never the
   * unspecified address, which no allocator or load balancer hands out, the API server refuses as
   * an external IP (ValidateNonSpecialIP), and ipset refuses as a Null-valued element.
   */
  serviceIP(v: unknown, at: Seg[], key?: Seg): string {
    const s = this.ip(v, at, key);
    if ((s === '0.0.0.0' || (s.includes(':') && UNSPECIFIED_V6.test(s))) && ipFamily(s) !== null) this.error(at, `${s} is the unspecified address, not a Service address`, key);
    return s;
  }
  strMap(v: unknown, at: Seg[], key: Seg): Record<string, string> {
    if (v === undefined || v === null) return NO_STRINGS;
    const o = this.obj(v, at, key);
    const out: Record<string, string> = {};
    for (const k in o) {
      if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
      const val = o[k];
      out[k] = typeof val === 'string' ? val : this.str(val, [...at, key], k);
    }
    return out;
  }
  protocol(v: unknown, at: Seg[], key: Seg): Protocol {
    return v === 'TCP' || v === 'UDP' || v === 'SCTP' ? v : this.oneOf(v, at, key, PROTOCOLS, 'TCP');
  }
  /**
   * `s` checked as the API server checks a name of that kind. Names end up in rule comments,
   * chain-name hashes, ipset comments, DNS names and the keys svcplane files service ports under:
   * one with any other character than letters, digits, '-', '_' and '.' (a quote, a space, a
   * newline, a ':' or '/') could break that text or those keys, and is an error. One made only of
   * those, which the API server would still refuse (capitals, say: kube-proxy's own tests use
   * such names, and kube-proxy takes them as they are), is a warning.
   */
  name(s: string, kind: NameKind, at: Seg[], key: Seg, field?: RepeatedName): void {
    if (this.validName(s, kind, field)) return;
    const max = NAME_RULES[kind].max;
    const why = s.length > max ? `must be no more than ${max} characters` : NAME_RULES[kind].message;
    if (s.length <= max && CARRIED.test(s)) this.warn(at, `${shown(s)}: ${why} (the API server would refuse it; taken as it is)`, key);
    else this.error(at, `invalid value ${shown(s)}: ${why}`, key);
  }
  /**
   * Whether name() would take `s` (for callers that build the field's path only on failure).
   * `field`: where the name is one that recurs (a namespace, a port name, a node), checked once
   * while it is remembered; each such field always holds one kind of name.
   */
  validName(s: string, kind: NameKind, field?: RepeatedName): boolean {
    const seen = field === undefined ? null : this.seenNames[field];
    if (seen !== null && seen.has(s)) return true;
    if (!isValidName(s, kind)) return false;
    if (seen !== null) {
      if (seen.size >= SEEN_NAMES) seen.clear();
      seen.add(s);
    }
    return true;
  }
}

/**
 * The names the API server allows (k8s.io/apimachinery/pkg/util/validation: IsDNS1123Label,
 * IsDNS1123Subdomain, IsDNS1035Label, IsValidLabelValue), with its messages: 'label' (namespaces,
 * port names, hostnames), 'subdomain' (EndpointSlice and Node names), 'dns1035' (Service names),
 * 'labelValue' (label values).
 */
export type NameKind = 'label' | 'subdomain' | 'dns1035' | 'labelValue';
/** Fields whose names recur from object to object: namespaces and port names (labels), endpoints' node names (subdomains). */
export type RepeatedName = 'namespace' | 'port' | 'node';
/** The most names of one repeated field a Reader remembers as valid (a cluster's nodes, its namespaces). */
const SEEN_NAMES = 4096;
/** Whether the API server takes `s` as a name of `kind`: its length and its pattern. */
export function isValidName(s: string, kind: NameKind): boolean {
  const rule = NAME_RULES[kind];
  return s.length <= rule.max && rule.re.test(s);
}

/** What every kind of name may hold and still be carried safely (a label value's alphabet). */
const CARRIED = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
// Regular expressions rather than a loop over the characters: V8 compiles a pattern to machine
// code on its first use, where a first full sync would run tens of thousands of checks through a
// loop still interpreted (~30 ms more for 20,000 Services on this machine).
const NAME_RULES: Record<NameKind, { re: RegExp; max: number; message: string }> = {
  label: {
    re: new RegExp(`^${LABEL}$`), max: 63,
    message: `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '${LABEL}')`,
  },
  subdomain: {
    re: new RegExp(`^${LABEL}(\\.${LABEL})*$`), max: 253,
    message: `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '${LABEL}(\\.${LABEL})*')`,
  },
  dns1035: {
    re: /^[a-z]([-a-z0-9]*[a-z0-9])?$/, max: 63,
    message: "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
  },
  labelValue: {
    re: /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/, max: 63,
    message: "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
  },
};


/**
 * Text of only '0' and ':', the unspecified address when it parses (one RegExp, not a new one per
 * read; asked only of text with a ':', as any other such text is no address).
 */
const UNSPECIFIED_V6 = /^[0:]+$/;

/**
 * `v` without holes: a list built in JavaScript may have some, which map() and forEach() skip, so
 * they are read as the absent elements they are. (YAML and JSON never make one; includes() is one
 * fast scan.)
 */
export const dense = (v: unknown[]): unknown[] => (v.includes(undefined) ? Array.from(v) : v);

/** Shared stand-ins for an absent mapping or list (never written to). */
export const EMPTY: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;
export const NONE: unknown[] = Object.freeze([]) as unknown as unknown[];
/** An absent or empty list: decoded as the shared frozen [] without a reader callback made for it. */
export const absent = (v: unknown): boolean => v === undefined || v === null || (Array.isArray(v) && v.length === 0);
export const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Decoded objects share this for absent string maps (never written to). */
export const NO_STRINGS: Record<string, string> = Object.freeze({}) as Record<string, string>;
export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

// ---- port lists: one decoded list shared by every object whose raw list decodes to the same values

/** The values of a port list, as a key for Reader.sharedList (names length-prefixed: no two lists share one). */
export function portsKey(kind: string, ports: Array<ServicePort | EndpointPort>): string {
  let key = kind;
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i]!;
    key += `${p.name === null ? '-' : `${p.name.length}:${p.name}`}${p.protocol},${p.port}`;
    if ('nodePort' in p) key += typeof p.targetPort === 'string' ? `,${p.nodePort},${p.targetPort.length}:${p.targetPort};` : `,${p.nodePort},${p.targetPort};`;
    else key += ';';
  }
  return key;
}

/** Whether raw port `p` decodes to exactly `port`, a valid one (so it would decode without an issue). */
function sameServicePort(p: unknown, port: ServicePort): boolean {
  if (!isMapping(p)) return false;
  const t = p.targetPort;
  return (p.name === port.name || (port.name === '' && (p.name === undefined || p.name === null)))
    && (p.protocol === port.protocol || (port.protocol === 'TCP' && (p.protocol === undefined || p.protocol === null)))
    && p.port === port.port
    && (p.nodePort === port.nodePort || (port.nodePort === 0 && (p.nodePort === undefined || p.nodePort === null)))
    && (typeof t === 'string' || typeof t === 'number' ? t : null) === port.targetPort;
}

/** Whether the raw port list `v` decodes to exactly `ports`, a valid shared list. */
export function sameServicePorts(v: unknown, ports: ServicePort[]): boolean {
  if (!Array.isArray(v) || v.length !== ports.length) return false;
  for (let i = 0; i < ports.length; i++) if (!sameServicePort(v[i], ports[i]!)) return false;
  return true;
}

/**
 * Whether the raw port list `v` decodes to exactly `ports`, a valid shared list whose ports all
 * have names (so it would decode without an issue, warnings included).
 */
export function sameEndpointPorts(v: unknown, ports: EndpointPort[]): boolean {
  if (!Array.isArray(v) || v.length !== ports.length) return false;
  for (let i = 0; i < ports.length; i++) {
    const p = v[i], port = ports[i]!;
    if (!isMapping(p) || p.name !== port.name) return false;
    if (!(p.port === port.port || (port.port === null && p.port === undefined))) return false;
    if (!(p.protocol === port.protocol || (port.protocol === 'TCP' && (p.protocol === undefined || p.protocol === null)))) return false;
  }
  return true;
}

