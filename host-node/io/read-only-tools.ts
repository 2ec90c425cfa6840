// read-only-tools.ts — the listing commands an operator runs on a kube-proxy node, answered from the
// live core instead of the kernel: `iptables-save [-c] [-t T]`, `iptables [-t T] -L|-S [CHAIN]
// [-n] [-v] [-x] [--line-numbers]` (and the ip6tables forms), `ipvsadm -L|-S …` with its
// display options, `ipset list|save|test …` (the ipvs mode's sets), `recent [LIST]` (what
// /proc/net/xt_recent shows: the ClientIP affinity lists), and `direct`: the direct mode's
// service table, which no kernel tool shows. Command lines are read as the tools read
// them (bundled short options such as `-nvL` and `-tnat`, long options with `=`), and only these
// read-only forms are taken: anything that would change a table (-A, -D, -F, -Z, ipvsadm -C,
// ipset add …) is refused by name. Never writes.
import type { Dataplane } from '../dataplane.js';
import type { TableName } from '../netfilter/index.js';
import { parseCommand } from '../ipset/index.js';
import { parseCommand as parseIpvsadm, IpvsadmExit } from '../ipvs/ipvsadm-options.js';
import { procAddress } from '../core/conntrack-list.js';

export const SHOW_TOOLS = ['iptables-save', 'ip6tables-save', 'iptables', 'ip6tables', 'ipvsadm', 'ipset', 'recent', 'direct'] as const;
export type ShowTool = (typeof SHOW_TOOLS)[number];

/** A command line refused: its message is what the tool would say, or why it is not taken. */
export class ToolRefused extends Error {}

const TABLES: readonly string[] = ['raw', 'mangle', 'nat', 'filter'];

/** `argv` with bundled short options split (`-nvL` → -n -v -L; a value-taking letter takes the rest: `-tnat` → -t nat), as iptables' getopt reads them. */
function unbundle(argv: readonly string[], takesValue: string): string[] {
  const out: string[] = [];
  for (const a of argv) {
    if (!/^-[^-]/.test(a) || a.length <= 2) { out.push(a); continue; }
    for (let i = 1; i < a.length; i++) {
      out.push(`-${a[i]}`);
      if (takesValue.includes(a[i]!) && i + 1 < a.length) { out.push(a.slice(i + 1)); break; }
    }
  }
  // --opt=value as two words.
  return out.flatMap((a) => (/^--[^=]+=/.test(a) ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a]));
}

function table(prog: string, v: string | undefined): TableName {
  if (v === undefined) throw new ToolRefused(`${prog}: option "-t" requires an argument`);
  if (!TABLES.includes(v)) throw new ToolRefused(`${prog}: can't initialize ${prog} table \`${v}': Table does not exist (do you need to insmod?)`);
  return v as TableName;
}

/**
 * A listing's text in pieces, concatenated as they are and made as they are pulled (a large rule
 * listing a slice at a time), and whether what it lists is still live: false once a restore has
 * replaced the rules it reads (then it is to be made again).
 */
export interface ShowOutput {
  pieces: Iterable<string>;
  current(): boolean;
}

/** A text made at once. */
const whole = (text: string): ShowOutput => ({ pieces: [text], current: () => true });

/** An iptables (or direct table) listing's lines, each with its newline. */
function lined(listing: { lines: Iterable<string>; current: () => boolean }): ShowOutput {
  return {
    pieces: (function* () { for (const l of listing.lines) yield `${l}\n`; })(),
    current: listing.current,
  };
}

function save(dp: Dataplane, tool: 'iptables-save' | 'ip6tables-save', argv: readonly string[]): ShowOutput {
  let counters = false;
  let t: TableName | undefined;
  const args = unbundle(argv, 't');
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-c' || a === '--counters') counters = true;
    else if (a === '-t' || a === '--table') t = table(tool, args[++i]);
    else throw new ToolRefused(`${tool}: ${JSON.stringify(a)}: only -c and -t TABLE are read here (the proxy lists, never changes, its rules)`);
  }
  return lined(dp.iptablesLines({ command: 'save', family: tool === 'iptables-save' ? 4 : 6, counters, ...(t ? { table: t } : {}) }));
}

function list(dp: Dataplane, tool: 'iptables' | 'ip6tables', argv: readonly string[]): ShowOutput {
  let t: TableName = 'filter';
  let command: 'L' | 'S' | undefined;
  let chain: string | undefined;
  let verbose = false, exact = false, lineNumbers = false;
  const args = unbundle(argv, 't');
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-t' || a === '--table') t = table(tool, args[++i]);
    else if (a === '-L' || a === '--list' || a === '-S' || a === '--list-rules') {
      if (command !== undefined) throw new ToolRefused(`${tool} v1.8.9 (legacy): Can't use -${a === '-L' || a === '--list' ? 'L' : 'S'} with -${command}`);
      command = a === '-L' || a === '--list' ? 'L' : 'S';
      if (args[i + 1] !== undefined && !args[i + 1]!.startsWith('-')) chain = args[++i];
    } else if (a === '-n' || a === '--numeric') { /* addresses are always printed as numbers */ }
    else if (a === '-v' || a === '--verbose') verbose = true;
    else if (a === '-x' || a === '--exact') exact = true;
    else if (a === '--line-numbers') lineNumbers = true;
    else throw new ToolRefused(`${tool}: ${JSON.stringify(a)}: only -L / -S [CHAIN] with -t, -n, -v, -x and --line-numbers are read here (the proxy lists, never changes, its rules)`);
  }
  if (command === undefined) throw new ToolRefused(`${tool} v1.8.9 (legacy): no command specified`);
  const family = tool === 'iptables' ? 4 : 6;
  try {
    return lined(command === 'L'
      ? dp.iptablesLines({ command: 'list', table: t, ...(chain !== undefined ? { chain } : {}), family, exact, lineNumbers, verbose })
      : dp.iptablesLines({ command: 'rules', table: t, ...(chain !== undefined ? { chain } : {}), family, counters: verbose }));
  } catch (e) {
    throw new ToolRefused((e as Error).message);
  }
}

/**
 * ipvsadm's command line as ipvsadm reads it (ipvs/ipvsadm-options.ts): the command its first
 * option names must be a listing (-L, -S); its display options and a service to list are its own.
 */
function ipvsadm(dp: Dataplane, argv: readonly string[]): ShowOutput {
  let cmd: string | undefined;
  try {
    const ce = parseIpvsadm([...argv]);
    cmd = typeof ce === 'string' ? ce : ce.cmd;
  } catch (e) {
    // No command first (ipvsadm's "Try `ipvsadm -h'"): say which are read; any other refusal is ipvsadm's own.
    if (!(e instanceof IpvsadmExit)) throw e;
    if (!e.stderr.startsWith('Try ')) throw new ToolRefused(`ipvsadm: ${e.stderr.trim()}`);
  }
  if (cmd === undefined) throw new ToolRefused('ipvsadm: give -L (or -S): the proxy lists its virtual servers, never changes them');
  if (cmd !== 'list' && cmd !== 'save') throw new ToolRefused(`ipvsadm: ${cmd}: only -L / -S and their display options are read here (the proxy lists, never changes, its virtual servers)`);
  // Asking a core without IPVS would set IPVS up in it (and a listing changes nothing).
  if (!dp.ipvsRunning) throw new ToolRefused('ipvsadm: this proxy runs no IPVS (its core is not in ipvs mode): no virtual servers to list');
  const listing = dp.ipvsadmListing(argv);
  if (listing) return listing;
  const r = dp.ipvsadm([...argv]);
  if (r.code !== 0) throw new ToolRefused(r.stderr.trim());
  return whole(r.stdout);
}

/** ipset's commands that only read: list, save, test (whether an entry is in a set), version. */
const IPSET_READS: readonly string[] = ['list', 'save', 'test', 'version'];

function ipset(dp: Dataplane, argv: readonly string[]): string {
  let command: ReturnType<typeof parseCommand>['command'];
  try {
    command = parseCommand(argv).command;
  } catch (e) {
    throw new ToolRefused((e as Error).message);
  }
  if (!IPSET_READS.includes(command.cmd)) throw new ToolRefused(`ipset: ${command.cmd}: only list, save, test and version are read here (the proxy lists, never changes, its sets)`);
  try {
    const r = dp.ipset.command(argv);
    // `test`: ipset says it on stderr ("E is in set S." / "E is NOT in set S."); here, as the text.
    if (command.cmd === 'test') return `${command.entry} is ${r.status === 0 ? '' : 'NOT '}in set ${command.name}.\n`;
    return r.output;
  } catch (e) {
    throw new ToolRefused((e as Error).message);
  }
}

/**
 * `recent`: the names of the lists (`ls /proc/net/xt_recent`); `recent LIST`: its entries as
 * `cat /proc/net/xt_recent/LIST` prints them (xt_recent.c recent_seq_show()), the stamps as
 * milliseconds on the packets' clock where the kernel prints jiffies.
 */
function recent(dp: Dataplane, argv: readonly string[]): string {
  if (argv.length === 0) return dp.recentLists().map((n) => `${n}\n`).join('');
  if (argv.length > 1) throw new ToolRefused(`recent: one list at a time, not ${JSON.stringify(argv.join(' '))}`);
  const entries = dp.recentEntries(argv[0]!);
  if (entries === undefined) throw new ToolRefused(`cat: /proc/net/xt_recent/${argv[0]}: No such file or directory`);
  return entries.map((e) => {
    const stamps = e.stamps;
    const last = stamps[(e.next - 1 + stamps.length) % stamps.length] ?? 0;
    return `src=${procAddress(e.address)} ttl: ${e.ttl} last_seen: ${last} oldest_pkt: ${e.next}${stamps.map((t, i) => `${i ? ',' : ''} ${t}`).join('')}\n`;
  }).join('');
}

/** The output of `tool argv` over the live core, or ToolRefused with what the tool would say. */
export function runShowTool(dp: Dataplane, tool: ShowTool, argv: readonly string[]): string {
  return [...showTool(dp, tool, argv).pieces].join('');
}

/**
 * runShowTool() in pieces (ShowOutput); a command line it refuses throws ToolRefused here,
 * before any piece is made.
 */
export function showTool(dp: Dataplane, tool: ShowTool, argv: readonly string[]): ShowOutput {
  switch (tool) {
    case 'iptables-save': case 'ip6tables-save': return save(dp, tool, argv);
    case 'iptables': case 'ip6tables': return list(dp, tool, argv);
    case 'ipvsadm': return ipvsadm(dp, argv);
    case 'ipset': return whole(ipset(dp, argv));
    case 'recent': return whole(recent(dp, argv));
    case 'direct':
      if (argv.length > 0) throw new ToolRefused(`direct: ${JSON.stringify(argv[0])}: the direct table is listed whole`);
      return lined(dp.directLines());
  }
}
