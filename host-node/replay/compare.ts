// compare.ts — the what-if: given the per-packet JSON lines of one capture replayed under two
// configurations, groups packets into flows by the tuple they arrived with (both directions of one
// tuple together, named as the capture first saw it; an answer from a backend arrives with the
// backend's address and is a flow of its own) and reports every flow the two send differently: verdict, drop reason,
// or the translated addresses and ports each packet leaves with. Renders the result as a JSON
// document and as a readable table. Pure: reads strings, returns values; never runs the replay.

export interface ReplayTuple { proto: number; src: string; dst: string; sport?: number; dport?: number }

/** One line of svcplane-replay's --json output (ABI.md §13). */
export interface ReplayLine {
  i: number;
  t: number;
  in?: ReplayTuple;
  verdict: 'PASS' | 'FORWARD' | 'DROP' | 'REPLY' | 'SKIP';
  reason?: string;
  ct?: string;
  tcp?: string;
  out?: ReplayTuple;
  frame?: number;
  service?: number;
  ipvs?: { service: number; dest: number; conn: number; method: string; new: boolean };
  mark?: number;
}

export interface FlowOutcome {
  /** The first packet's fate: "FORWARD 10.244.1.11:8080", "DROP no_endpoints", … */
  first: string;
  /** Every distinct fate the flow's packets met, in order of first appearance. */
  outcomes: string[];
}

export interface FlowDiff {
  /** The flow as the capture first saw it: "tcp 10.244.3.3:40000 -> 10.96.0.80:80". */
  flow: string;
  packets: number;
  /** Packets whose fate differs between the two configurations. */
  differing: number;
  /** Capture index of the first of them. */
  firstDifferingPacket: number;
  a: FlowOutcome;
  b: FlowOutcome;
}

export interface Comparison {
  packets: number;
  flows: number;
  flowsDiffering: number;
  packetsDiffering: number;
  diffs: FlowDiff[];
}

export function parseReplayLines(text: string, name = 'replay output'): ReplayLine[] {
  const out: ReplayLine[] = [];
  text.split('\n').forEach((line, n) => {
    if (line.length === 0) return;
    try {
      out.push(JSON.parse(line) as ReplayLine);
    } catch {
      throw new Error(`${name}: line ${n + 1} is not JSON`);
    }
  });
  return out;
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };

function endpoint(addr: string, port: number | undefined): string {
  if (port === undefined) return addr;
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function flowName(t: ReplayTuple): string {
  return `${PROTO_NAMES[t.proto] ?? t.proto} ${endpoint(t.src, t.sport)} -> ${endpoint(t.dst, t.dport)}`;
}

// Both directions of one connection share a key.
function flowKey(t: ReplayTuple): string {
  const a = endpoint(t.src, t.sport), b = endpoint(t.dst, t.dport);
  return `${t.proto} ${a < b ? `${a} ${b}` : `${b} ${a}`}`;
}

/** A packet's fate in one configuration, as text. */
export function fate(l: ReplayLine): string {
  if (l.verdict === 'DROP' || l.verdict === 'SKIP') return `${l.verdict} ${l.reason ?? ''}`.trim();
  if (!l.out) return l.verdict;
  const src = endpoint(l.out.src, l.out.sport), dst = endpoint(l.out.dst, l.out.dport);
  const inSrc = l.in ? endpoint(l.in.src, l.in.sport) : src;
  return `${l.verdict} ${dst}${src !== inSrc ? ` from ${src}` : ''}`;
}

/** Compares the two replays of one capture packet by packet; flows in capture order. */
export function compareReplays(a: ReplayLine[], b: ReplayLine[]): Comparison {
  if (a.length !== b.length) throw new Error(`the replays cover different captures (${a.length} and ${b.length} packets)`);
  const flows = new Map<string, { name: string; packets: number; differing: number; first: number; fa: string[]; fb: string[] }>();
  let packetsDiffering = 0;
  for (let k = 0; k < a.length; k++) {
    const pa = a[k]!, pb = b[k]!;
    if (pa.i !== pb.i) throw new Error(`packet ${k}: the replays are not of the same capture`);
    const key = pa.in ? flowKey(pa.in) : `packet ${pa.i}`;
    let f = flows.get(key);
    if (!f) flows.set(key, f = { name: pa.in ? flowName(pa.in) : `packet ${pa.i} (not parsed)`, packets: 0, differing: 0, first: -1, fa: [], fb: [] });
    f.packets++;
    const x = fate(pa), y = fate(pb);
    if (!f.fa.includes(x)) f.fa.push(x);
    if (!f.fb.includes(y)) f.fb.push(y);
    if (x !== y) {
      packetsDiffering++;
      f.differing++;
      if (f.first < 0) f.first = pa.i;
    }
  }
  const diffs: FlowDiff[] = [];
  for (const f of flows.values()) {
    if (f.differing === 0) continue;
    diffs.push({
      flow: f.name, packets: f.packets, differing: f.differing, firstDifferingPacket: f.first,
      a: { first: f.fa[0]!, outcomes: f.fa }, b: { first: f.fb[0]!, outcomes: f.fb },
    });
  }
  return { packets: a.length, flows: flows.size, flowsDiffering: diffs.length, packetsDiffering, diffs };
}

/** The comparison as a table: one row per differing flow, then a summary line. */
export function renderComparison(c: Comparison, names: { a: string; b: string } = { a: 'A', b: 'B' }): string {
  const rows = c.diffs.map((d) => [d.flow, `${d.differing}/${d.packets}`, d.a.outcomes.join(', '), d.b.outcomes.join(', ')]);
  const head = ['flow', 'packets', names.a, names.b];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  const out = rows.length > 0 ? [line(head), ...rows.map(line)] : [];
  out.push(`${c.flowsDiffering} of ${c.flows} flows (${c.packetsDiffering} of ${c.packets} packets) are sent differently`);
  return out.join('\n') + '\n';
}
