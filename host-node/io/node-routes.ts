// node-routes.ts — steers Service traffic of the current network namespace into the proxy's TUN
// device with plain routing, no netfilter: the service CIDRs and the masquerade address are routed
// to the device; a table of its own holds a default route into it, and policy rules send NodePorts on
// node addresses, externalIPs/LoadBalancer IPs that are node addresses, and endpoints' replies
// (client-IP preservation) there. A loop guard lets packets the proxy writes back skip the steering.
// Records every change it makes and undoes them all in remove() (also after a failed setup), but
// the service CIDRs' unreachable fallbacks, which keep Service traffic on the node while no proxy
// runs; a crashed run's leftovers (its rule priorities, its table, its fallbacks) are cleared before
// setup (and by removeLeftovers for --cleanup), and repair() puts back what something else removed
// while it runs. Never creates
// the device, never reads or writes packets, never touches addresses or other namespaces.
// Recipes and pitfalls: /work/shared/notes/tun-forwarding.md (verified with iproute2 6.1).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Protocol } from '../kube/objects.js';
import { cidrContains, formatCIDR, parseCIDR, parseIP } from '../kube/ip.js';

/** Rule priorities (ip rule pref) this module owns. */
export const RULE_PREF = {
  /** Packets read back from the TUN skip all steering (the loop guard). */
  guard: 100,
  /** Health check node ports: always delivered locally (see sync()). */
  healthCheck: 105,
  nodePort: 110,
  /** externalIPs / LoadBalancer IPs that are also node addresses (the local table would take them first). */
  localVip: 120,
  /** Endpoints' replies to clients that were not masqueraded. */
  reply: 130,
  /** Where the `lookup local` rule moves so the rules above come before it. */
  local: 250,
} as const;
const OWNED_PREFS = new Set<number>(Object.values(RULE_PREF));

/**
 * The metric of the `unreachable` route kept under each service CIDR's route into the device (the
 * largest there is, so any other route wins): when the proxy stops or is killed its device and that
 * route go, and Service traffic then fails at once on the node instead of leaving by the default
 * route toward addresses outside the cluster. It stays after the proxy's exit (a restart's gap, as
 * kube-proxy's rules stay after its own); `--cleanup` removes it.
 */
export const FALLBACK_METRIC = 4294967295;

export interface NodeRoutesOptions {
  tun: string;
  table: number;
  serviceCIDRs: string[];
  masqueradeAddresses: string[];
  nodePortRange: [number, number];
  /** Node addresses NodePorts answer on. */
  nodePortAddresses: string[];
  /**
   * Pod CIDRs: endpoints inside them have their replies steered by one rule per protocol and
   * port range for the whole CIDR instead of one per endpoint (see replyRules).
   */
  clusterCIDRs?: string[];
  log?: (line: string) => void;
}

/** A port on an address for one protocol. */
export interface AddrPort {
  ip: string;
  protocol: Protocol;
  port: number;
}

/** Endpoints that began or stopped needing their replies steered. */
export interface ReplyDelta { added: AddrPort[]; removed: AddrPort[] }

/** What the Services currently need besides the static routes. */
export interface DynamicRoutes {
  /** externalIPs and LoadBalancer IPs: routed to the TUN (or ruled, when they are node addresses). */
  vips: AddrPort[];
  /**
   * Endpoints (ip, protocol, targetPort) whose replies go through the TUN: all of them, or what
   * changed since the previous sync() (each endpoint once).
   */
  replies: AddrPort[] | ReplyDelta;
  /** healthCheckNodePorts the proxy itself listens on (TCP). */
  healthCheckPorts: Map<string, number>;
}

type Fam = 4 | 6;
/** A setup step; `undo` null: kept when the proxy stops (the fallback routes). */
interface Step { what: string; args: string[]; undo: string[] | null }
const famOf = (ip: string): Fam => (ip.includes(':') ? 6 : 4);
const famFlag = (f: Fam): string => (f === 6 ? '-6' : '-4');
const hostLen = (ip: string): string => `${ip}/${famOf(ip) === 6 ? 128 : 32}`;

/** Runs `ip args…`; throws with its stderr. */
export function ipCmd(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

/**
 * Runs `ip FF -batch -` over `lines` (one command each, without `ip FF`); with `force` the batch
 * goes on after a failed command. Returns the error lines, none when every command succeeded.
 */
function ipBatchRun(ff: string, lines: string[], force: boolean): string[] {
  try {
    execFileSync('ip', [ff, ...(force ? ['-force'] : []), '-batch', '-'], { input: `${lines.join('\n')}\n`, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    return [];
  } catch (e) {
    const out = ((e as { stderr?: string }).stderr ?? String(e)).split('\n').filter((l) => l.trim() !== '');
    return out.length > 0 ? out : [(e as Error).message];
  }
}

/**
 * Runs many `ip` commands ("-4 rule add …", "-6 route del …") in one process per family; returns
 * the error lines (with -force the batch goes on after a failed command).
 */
function ipBatch(lines: string[]): string[] {
  const errors: string[] = [];
  for (const ff of ['-4', '-6']) {
    const mine = lines.filter((l) => l.startsWith(`${ff} `)).map((l) => l.slice(3));
    if (mine.length > 0) for (const e of ipBatchRun(ff, mine, true)) errors.push(e);
  }
  return errors;
}

/** Global-scope addresses of this namespace (the node's addresses), the given device excluded. */
export function hostAddresses(exceptDevice = ''): string[] {
  const links = JSON.parse(ipCmd(['-j', 'addr', 'show'])) as Array<{ ifname: string; addr_info?: Array<{ local: string; scope: string }> }>;
  return links.filter((l) => l.ifname !== exceptDevice)
    .flatMap((l) => (l.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => a.local));
}

const PROTOS: Protocol[] = ['TCP', 'UDP', 'SCTP'];

/**
 * The policy-rule selectors that steer endpoints' replies into the device. The kernel walks rules
 * one by one for every routed packet, so one rule per endpoint costs every packet on the node a
 * scan as long as the cluster's endpoint list. Endpoints inside a pod CIDR share rules instead —
 * `from <cidr> ipproto <p> sport <lo>-<hi>`, one per run of consecutive target ports — which also
 * steers replies of connections that did not come through a Service; the proxy marks those
 * TRACKED_ONLY (served.ts) and the core hands them back untouched. Endpoints outside every pod CIDR
 * (host-network pods) keep a rule of their own. Kept up to date from the endpoints that come and
 * go, so a sync that changes one endpoint reworks only the rules of its pod CIDR and protocol.
 */
export class ReplyRuleSet {
  private readonly cidrs: { text: string; cidr: NonNullable<ReturnType<typeof parseCIDR>> }[];
  /** `from <cidr> ipproto <p>` → target port → endpoints with it. */
  private readonly ports = new Map<string, Map<number, number>>();
  /** Each such selector's rules now. */
  private readonly runs = new Map<string, string[]>();
  /** Host-network endpoints' own rules → endpoints giving it. */
  private readonly own = new Map<string, number>();
  readonly rules = new Set<string>();

  constructor(clusterCIDRs: string[]) {
    this.cidrs = [];
    for (const text of clusterCIDRs) {
      const cidr = parseCIDR(text);
      if (cidr) this.cidrs.push({ text, cidr });
    }
  }

  /** Counts `add` in and `remove` out (each a distinct endpoint); returns the rules that appeared and went. */
  update(add: readonly AddrPort[], remove: readonly AddrPort[]): { added: string[]; removed: string[] } {
    const added: string[] = [];
    const removed: string[] = [];
    const dirty = new Set<string>();
    for (const r of remove) this.count(r, -1, dirty, added, removed);
    for (const r of add) this.count(r, 1, dirty, added, removed);
    for (const key of dirty) {
      const before = this.runs.get(key) ?? [];
      const set = this.ports.get(key);
      const now = set ? portRuns(key, set) : [];
      if (now.length > 0) this.runs.set(key, now);
      else this.runs.delete(key);
      for (const rule of before) if (!now.includes(rule)) { this.rules.delete(rule); removed.push(rule); }
      for (const rule of now) if (!before.includes(rule)) { this.rules.add(rule); added.push(rule); }
    }
    return { added, removed };
  }

  private count(r: AddrPort, d: 1 | -1, dirty: Set<string>, added: string[], removed: string[]): void {
    const ip = parseIP(r.ip);
    const c = ip && this.cidrs.find((x) => cidrContains(x.cidr, ip));
    if (!c) {
      const rule = `from ${r.ip} ipproto ${lower(r.protocol)} sport ${r.port}`;
      const n = (this.own.get(rule) ?? 0) + d;
      if (n > 0) this.own.set(rule, n);
      else this.own.delete(rule);
      if (n === 1 && d > 0) { this.rules.add(rule); added.push(rule); }
      else if (n === 0) { this.rules.delete(rule); removed.push(rule); }
      return;
    }
    const key = `from ${c.text} ipproto ${lower(r.protocol)}`;
    let set = this.ports.get(key);
    if (!set) this.ports.set(key, (set = new Map()));
    const n = (set.get(r.port) ?? 0) + d;
    if (n > 0) set.set(r.port, n);
    else set.delete(r.port);
    if (set.size === 0) this.ports.delete(key);
    if ((n === 1 && d > 0) || n === 0) dirty.add(key);
  }
}

/** One rule per run of consecutive ports of `set`, under selector `key`. */
function portRuns(key: string, set: Map<number, number>): string[] {
  const sorted = [...set.keys()].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(`${key} sport ${sorted[i] === sorted[j] ? sorted[i] : `${sorted[i]}-${sorted[j]}`}`);
    i = j + 1;
  }
  return out;
}

/** The reply rules of a whole endpoint list (ReplyRuleSet from nothing). */
export function replyRules(replies: AddrPort[], clusterCIDRs: string[]): Set<string> {
  const set = new ReplyRuleSet(clusterCIDRs);
  set.update(replies, []);
  return set.rules;
}
const lower = (p: Protocol): string => p.toLowerCase();

// sync()'s rules by kind, from their keys: the text after `rule add` / `rule del`, and the family.
// A local-VIP or reply key is its selectors ("to IP …", "from IP …"), a health check's "FAMILY PORT".
const keyFam = (k: string): Fam => famOf(k.split(' ')[1]!);
const localVipRule = (k: string, table: number): string => `pref ${RULE_PREF.localVip} ${k} lookup ${table}`;
const replyRule = (k: string, table: number): string => `pref ${RULE_PREF.reply} ${k} lookup ${table}`;
const hcFam = (k: string): Fam => Number(k.split(' ')[0]) as Fam;
const hcRule = (k: string): string => `pref ${RULE_PREF.healthCheck} ipproto tcp dport ${k.split(' ')[1]} goto ${RULE_PREF.local}`;

export class NodeRoutes {
  /** Undo steps, newest last. */
  private readonly undo: Array<{ what: string; run: () => void }> = [];
  private readonly families: Fam[];
  private vipRoutes = new Set<string>();
  private localVipRules = new Set<string>();
  private replies: ReplyRuleSet;
  private hcRules = new Set<string>();
  private readonly nodeAddrs: Set<string>;
  /** setup()'s steps per family, as applied (repair() puts back what of them went missing). */
  private readonly applied = new Map<Fam, Step[]>();

  constructor(private readonly o: NodeRoutesOptions, nodeAddresses: string[]) {
    this.nodeAddrs = new Set(nodeAddresses);
    const fams = new Set<Fam>([...o.serviceCIDRs.map((c) => famOf(c)), ...o.masqueradeAddresses.map(famOf)]);
    this.families = [...fams].sort();
    this.replies = new ReplyRuleSet(o.clusterCIDRs ?? []);
  }

  /** Routes, rules and sysctls for the device (which must exist). Undone by remove() on failure. */
  setup(): void {
    const { tun, table } = this.o;
    for (const f of this.families) this.clearStale(f);
    // notes: replies to the node's own connections from ephemeral ports inside the NodePort range
    // would be steered into the device (and dropped: they carry a socket, see sync()).
    const [plo, phi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (plo! <= this.o.nodePortRange[1] && phi! >= this.o.nodePortRange[0]) {
      this.o.log?.(`proxy: warning: net.ipv4.ip_local_port_range ${plo}-${phi} overlaps the NodePort range ${this.o.nodePortRange.join('-')}`);
    }
    try {
      this.sysctl('net/ipv4/ip_forward', '1');
      if (this.families.includes(6)) this.sysctl('net/ipv6/conf/all/forwarding', '1');
      // No IPv6 on the device unless it carries IPv6 (router solicitations and MLD would arrive).
      this.sysctl(`net/ipv6/conf/${tun}/disable_ipv6`, this.families.includes(6) ? '0' : '1', false);
      // Carrying IPv6, the device gets no link-local address: no router solicitations, DAD or MLD.
      if (this.families.includes(6)) this.step(`link ${tun} addrgenmode none`, ['link', 'set', tun, 'addrgenmode', 'none'], null);
      // The proxy writes back packets whose source is routed into this very device (a Service
      // address after un-NAT): reverse-path filtering on the device would drop them.
      this.sysctl(`net/ipv4/conf/${tun}/rp_filter`, '0', false);
      this.step(`link ${tun} up`, ['link', 'set', tun, 'up'], null);
      const [lo, hi] = this.o.nodePortRange;
      for (const f of this.families) {
        const steps: Step[] = [];
        for (const cidr of this.o.serviceCIDRs) {
          if (famOf(cidr) !== f) continue;
          const fallback = ['unreachable', cidr, 'metric', String(FALLBACK_METRIC)];
          steps.push(
            { what: `route ${cidr}`, args: ['route', 'replace', cidr, 'dev', tun], undo: ['route', 'del', cidr, 'dev', tun] },
            // Kept when the proxy stops, as kube-proxy's rules are: until a proxy runs again.
            { what: `fallback ${cidr}`, args: ['route', 'replace', ...fallback], undo: null },
          );
        }
        for (const a of this.o.masqueradeAddresses) {
          const masq = hostLen(a);
          if (famOf(a) === f) steps.push({ what: `route ${masq}`, args: ['route', 'replace', masq, 'dev', tun], undo: ['route', 'del', masq, 'dev', tun] });
        }
        steps.push(
          { what: `table ${table} default (IPv${f})`, args: ['route', 'replace', 'default', 'dev', tun, 'table', String(table)], undo: ['route', 'flush', 'table', String(table)] },
          // notes: rules ahead of `lookup local` are needed for NodePorts on node addresses; add the
          // moved local rule before deleting pref 0 so no packet ever misses it.
          { what: `local rule → ${RULE_PREF.local} (IPv${f})`, args: ['rule', 'add', 'pref', String(RULE_PREF.local), 'lookup', 'local'], undo: ['rule', 'del', 'pref', String(RULE_PREF.local), 'lookup', 'local'] },
          { what: `local rule pref 0 removed (IPv${f})`, args: ['rule', 'del', 'pref', '0', 'lookup', 'local'], undo: ['rule', 'add', 'pref', '0', 'lookup', 'local'] },
          { what: `loop guard (IPv${f})`, args: ['rule', 'add', 'pref', String(RULE_PREF.guard), 'iif', tun, 'goto', String(RULE_PREF.local)], undo: ['rule', 'del', 'pref', String(RULE_PREF.guard), 'iif', tun, 'goto', String(RULE_PREF.local)] },
        );
        for (const addr of this.o.nodePortAddresses) {
          if (famOf(addr) !== f) continue;
          for (const p of PROTOS) {
            const sel = ['to', addr, 'ipproto', lower(p), 'dport', lo === hi ? String(lo) : `${lo}-${hi}`];
            steps.push({ what: `nodeports ${addr} ${p}`, args: ['rule', 'add', 'pref', String(RULE_PREF.nodePort), ...sel, 'lookup', String(table)], undo: ['rule', 'del', 'pref', String(RULE_PREF.nodePort), ...sel, 'lookup', String(table)] });
          }
        }
        this.batch(f, steps);
        this.applied.set(f, steps);
      }
    } catch (e) {
      this.remove();
      throw e;
    }
  }

  /**
   * Brings the Service-dependent routes and rules to `want`, changing only the difference. Returns
   * the errors met (the rest is applied regardless).
   */
  sync(want: DynamicRoutes): string[] {
    const { tun, table } = this.o;
    const routes = new Set<string>();
    const localRules = new Set<string>();
    for (const v of want.vips) {
      if (!this.families.includes(famOf(v.ip))) continue;
      if (this.nodeAddrs.has(v.ip)) localRules.add(`to ${v.ip} ipproto ${lower(v.protocol)} dport ${v.port}`);
      else routes.add(hostLen(v.ip));
    }
    const mine = (list: AddrPort[]): AddrPort[] => list.filter((r) => this.families.includes(famOf(r.ip)));
    let replies: { added: string[]; removed: string[] };
    if (Array.isArray(want.replies)) {
      const next = new ReplyRuleSet(this.o.clusterCIDRs ?? []);
      next.update(mine(want.replies), []);
      replies = { added: [...next.rules].filter((k) => !this.replies.rules.has(k)), removed: [...this.replies.rules].filter((k) => !next.rules.has(k)) };
      this.replies = next;
    } else {
      replies = this.replies.update(mine(want.replies.added), mine(want.replies.removed));
    }
    // A local listener in the NodePort range must not be steered: TCP early demux attaches the
    // listener's request socket to the handshake's ACK, and ip_forward drops any packet carrying a
    // socket (net/ipv4/ip_forward.c: "if (unlikely(skb->sk)) goto drop").
    const hc = new Set<string>();
    for (const port of new Set(want.healthCheckPorts.values())) for (const f of this.families) hc.add(`${f} ${port}`);
    const lines: string[] = [];
    const diff = (have: Set<string>, next: Set<string>, add: (k: string) => string, del: (k: string) => string): void => {
      for (const k of have) if (!next.has(k)) lines.push(del(k));
      for (const k of next) if (!have.has(k)) lines.push(add(k));
    };
    const fam = (k: string): string => famFlag(keyFam(k));
    diff(this.vipRoutes, routes, (k) => `${famFlag(famOf(k))} route replace ${k} dev ${tun}`, (k) => `${famFlag(famOf(k))} route del ${k} dev ${tun}`);
    diff(this.localVipRules, localRules, (k) => `${fam(k)} rule add ${localVipRule(k, table)}`, (k) => `${fam(k)} rule del ${localVipRule(k, table)}`);
    for (const k of replies.removed) lines.push(`${fam(k)} rule del ${replyRule(k, table)}`);
    for (const k of replies.added) lines.push(`${fam(k)} rule add ${replyRule(k, table)}`);
    diff(this.hcRules, hc, (k) => `${famFlag(hcFam(k))} rule add ${hcRule(k)}`, (k) => `${famFlag(hcFam(k))} rule del ${hcRule(k)}`);
    const errors = ipBatch(lines);
    this.hcRules = hc;
    this.vipRoutes = routes;
    this.localVipRules = localRules;
    return errors;
  }

  /** Counts of what is installed now (for metrics and tests). */
  counts(): { vipRoutes: number; localVipRules: number; replyRules: number } {
    return { vipRoutes: this.vipRoutes.size, localVipRules: this.localVipRules.size, replyRules: this.replies.rules.size };
  }

  /**
   * Puts back what something else removed of what setup() and sync() installed (a network manager
   * that deletes rules it does not know, an operator's `ip rule del`): kube-proxy's periodic sync
   * restores its rules the same way. A priority whose rules are not the ones expected, by count, has them
   * deleted and added again; a `lookup local` rule back at priority 0 is moved out again; the
   * routes are replaced (a no-op for those still there), the service CIDRs' unreachable fallbacks
   * too. Returns what was repaired and the errors.
   */
  repair(): { repaired: string[]; errors: string[] } {
    const repaired: string[] = [];
    const errors: string[] = [];
    const { tun, table } = this.o;
    for (const [f, steps] of this.applied) {
      const ff = famFlag(f);
      // What each priority should hold: setup's rules, then sync's.
      const want = new Map<number, string[]>();
      const expect = (pref: number, args: string): void => {
        const l = want.get(pref) ?? [];
        l.push(args);
        want.set(pref, l);
      };
      for (const st of steps) if (st.args[0] === 'rule' && st.args[1] === 'add') expect(Number(st.args[3]), st.args.join(' '));
      for (const k of this.localVipRules) if (keyFam(k) === f) expect(RULE_PREF.localVip, `rule add ${localVipRule(k, table)}`);
      for (const k of this.replies.rules) if (keyFam(k) === f) expect(RULE_PREF.reply, `rule add ${replyRule(k, table)}`);
      for (const k of this.hcRules) if (hcFam(k) === f) expect(RULE_PREF.healthCheck, `rule add ${hcRule(k)}`);
      let rules: PolicyRule[];
      try {
        rules = policyRules(ff);
      } catch (e) {
        errors.push(`ip ${ff} rule show: ${(e as Error).message}`);
        continue;
      }
      const have = new Map<number, number>();
      for (const r of rules) have.set(r.priority, (have.get(r.priority) ?? 0) + 1);
      const lines: string[] = [];
      // The moved local rule first, so no packet misses local delivery while the rest is redone.
      for (const pref of [RULE_PREF.local, ...[...OWNED_PREFS].filter((p) => p !== RULE_PREF.local)]) {
        const expected = want.get(pref) ?? [];
        const n = have.get(pref) ?? 0;
        if (n === expected.length) continue;
        repaired.push(`IPv${f} rules at priority ${pref} (${n} there, ${expected.length} wanted)`);
        for (let i = 0; i < n; i++) lines.push(`rule del pref ${pref}`);
        lines.push(...expected);
      }
      if (rules.some((r) => r.priority === 0 && r.table === 'local')) {
        repaired.push(`IPv${f} lookup local at priority 0 (moved to ${RULE_PREF.local} again)`);
        lines.push('rule del pref 0 lookup local');
      }
      // Routes: setup's and sync's, replaced whether or not they are there; counted to say so.
      const fallback = (st: Step) => st.args[2] === 'unreachable';
      const routeLines = steps.filter((st) => st.args[0] === 'route' && !fallback(st)).map((st) => st.args.join(' '));
      for (const k of this.vipRoutes) if (famOf(k) === f) routeLines.push(`route replace ${k} dev ${tun}`);
      const fallbackLines = steps.filter(fallback).map((st) => st.args.join(' '));
      let onDevice: number, inTable: number, fallbacks: number;
      try {
        onDevice = (ipCmd([ff, 'route', 'show', 'dev', tun]).match(/\S.*\n?/g) ?? []).length;
        inTable = (ipCmd([ff, 'route', 'show', 'table', String(table)]).match(/\S.*\n?/g) ?? []).length;
        fallbacks = fallbackRoutes(ff).length;
      } catch (e) {
        errors.push(`ip ${ff} route show: ${(e as Error).message}`);   // the device itself gone
        continue;
      }
      if (onDevice < routeLines.length - 1 || inTable < 1) {
        repaired.push(`IPv${f} routes into ${tun} (${onDevice + inTable} there, ${routeLines.length} wanted)`);
        lines.push(...routeLines);
      }
      if (fallbacks < fallbackLines.length) {
        repaired.push(`IPv${f} unreachable fallbacks of the service CIDRs (${fallbacks} there, ${fallbackLines.length} wanted)`);
        lines.push(...fallbackLines);
      }
      if (lines.length > 0) for (const e of ipBatchRun(ff, lines, true)) errors.push(e);
    }
    return { repaired, errors };
  }

  /** Undoes everything setup() and sync() did, newest first; returns the steps that failed. */
  remove(): string[] {
    const failed: string[] = [];
    const { table } = this.o;
    const dyn = [
      ...[...this.replies.rules].map((k) => `${famFlag(keyFam(k))} rule del ${replyRule(k, table)}`),
      ...[...this.localVipRules].map((k) => `${famFlag(keyFam(k))} rule del ${localVipRule(k, table)}`),
      ...[...this.vipRoutes].map((k) => `${famFlag(famOf(k))} route del ${k} dev ${this.o.tun}`),
      ...[...this.hcRules].map((k) => `${famFlag(hcFam(k))} rule del ${hcRule(k)}`),
    ];
    // Routes through the device vanish with it; a failure to delete one that is gone is not an
    // error, nor is the "Command failed -:N" line `ip -batch` prints after it.
    const errs = ipBatch(dyn);
    for (let i = 0; i < errs.length; i++) {
      if (!/No such|Cannot find|does not exist/i.test(errs[i]!)) failed.push(errs[i]!);
      else if (/^Command failed/.test(errs[i + 1] ?? '')) i++;
    }
    this.replies = new ReplyRuleSet(this.o.clusterCIDRs ?? []);
    this.localVipRules.clear();
    this.vipRoutes.clear();
    this.hcRules.clear();
    while (this.undo.length > 0) {
      const u = this.undo.pop()!;
      try {
        u.run();
      } catch (e) {
        const msg = (e as Error).message;
        if (!/No such|Cannot find|does not exist|ENOENT/i.test(msg)) failed.push(`${u.what}: ${msg}`);
      }
    }
    return failed;
  }

  private step(what: string, args: string[], undoArgs: string[] | null): void {
    ipCmd(args);
    if (undoArgs) this.undo.push({ what, run: () => ipCmd(undoArgs) });
  }

  /**
   * One family's steps in one `ip -batch` (a process each costs tens of milliseconds, and a start
   * has a score of them): run in order, the first failure stops the rest (no -force) and is thrown
   * naming its step; the undo of every step before it is kept, as step() does.
   */
  private batch(f: Fam, steps: Step[]): void {
    const ff = famFlag(f);
    const done = (n: number): void => {
      for (const st of steps.slice(0, n)) if (st.undo) this.undo.push({ what: st.what, run: () => ipCmd([ff, ...st.undo!]) });
    };
    const errors = ipBatchRun(ff, steps.map((st) => st.args.join(' ')), false);
    if (errors.length === 0) {
      done(steps.length);
      return;
    }
    // iproute2 reports the line it stopped at as "Command failed -:N".
    const failedAt = errors.map((l) => /Command failed -:(\d+)/.exec(l)?.[1]).find((n) => n !== undefined);
    const at = Math.min(Math.max(Number(failedAt ?? 1) - 1, 0), steps.length - 1);
    done(at);
    const why = errors.filter((l) => !l.startsWith('Command failed')).join('; ') || errors.join('; ');
    throw new Error(`ip ${ff} ${steps[at]!.args.join(' ')}: ${why}`);
  }

  /** Sets /proc/sys/<key>; the old value is restored on remove() when `restore`. */
  private sysctl(key: string, value: string, restore = true): void {
    const path = `/proc/sys/${key}`;
    const old = readFileSync(path, 'utf8').trim();
    if (old === value) return;
    writeFileSync(path, value);
    if (restore) this.undo.push({ what: `sysctl ${key}`, run: () => writeFileSync(path, old) });
  }

  /**
   * Rules at this module's priorities and its table, left by a run that could not clean up, and
   * fallbacks of service CIDRs this run does not have (its own stay in place: no moment without).
   */
  private clearStale(f: Fam): void {
    const n = removeLeftovers(f, this.o.table, this.o.serviceCIDRs);
    if (n.rules + n.routes > 0) this.o.log?.(`proxy: removed ${n.rules} IPv${f} rules and ${n.routes} routes a previous run left behind`);
  }
}

interface PolicyRule { priority: number; table?: string }

/** The policy rules of family `ff` (`ip -j rule show`). */
function policyRules(ff: string): PolicyRule[] {
  return JSON.parse(ipCmd([ff, '-j', 'rule', 'show'])) as PolicyRule[];
}

/** The destinations of the fallback routes of family `ff` (unreachable, at FALLBACK_METRIC). */
function fallbackRoutes(ff: string): string[] {
  return (JSON.parse(ipCmd([ff, '-j', 'route', 'show', 'type', 'unreachable'])) as Array<{ dst: string; metric?: number }>)
    .filter((r) => r.metric === FALLBACK_METRIC).map((r) => r.dst);
}

/**
 * Removes the policy rules at the proxy's priorities and the routes of its table that an earlier
 * run left behind (one killed or crashed before its cleanup), putting `lookup local` back at
 * priority 0 first if it is not there, and the fallback routes of service CIDRs not in `keep`;
 * returns how many rules and routes went.
 */
export function removeLeftovers(f: Fam, table: number, keep: readonly string[] = []): { rules: number; routes: number } {
  const ff = famFlag(f);
  const rules = policyRules(ff);
  const hasLocal0 = rules.some((r) => r.priority === 0 && r.table === 'local');
  const stale = rules.filter((r) => OWNED_PREFS.has(r.priority));
  const norm = (cidr: string): string => { const c = parseCIDR(cidr); return c ? formatCIDR(c) : cidr; };
  const kept = new Set(keep.map(norm));
  const fallbacks = fallbackRoutes(ff).filter((dst) => !kept.has(norm(dst)));
  if (stale.length > 0) {
    if (!hasLocal0) ipCmd([ff, 'rule', 'add', 'pref', '0', 'lookup', 'local']);
    // Each `rule del pref N` removes one rule of that priority.
    ipBatch(stale.map((r) => `${ff} rule del pref ${r.priority}`));
    ipBatch([`${ff} route flush table ${table}`]);
  }
  ipBatch(fallbacks.map((dst) => `${ff} route del unreachable ${dst} metric ${FALLBACK_METRIC}`));
  return { rules: stale.length, routes: fallbacks.length };
}
