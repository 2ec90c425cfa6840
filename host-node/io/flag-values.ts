// flag-values.ts — how kube-proxy's command line and config file read a value, for svcplane proxy
// to read them alike: a Go duration (time.ParseDuration's ms, s, m, h), an Int32 flag (pflag's
// strconv.ParseInt(text, 0, 32)) and a boolean flag given a value (pflag's strconv.ParseBool).
// Knows no flag by name; the caller says which are boolean and how to fail.

/** A Go-style duration ("250ms", "2s", "1m30s", "1.5s") in milliseconds; `fail` is told why not. */
export function duration(text: string, fail: (msg: string) => never): number {
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (text.trim() === '0') return 0;   // Go's time.ParseDuration takes a bare 0
  const parts = [...text.trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/gy)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text.trim()) {
    fail(`expected a duration such as 250ms or 2s, got ${JSON.stringify(text)}`);
  }
  return parts.reduce((ms, p) => ms + Number(p[1]) * unit[p[2]!]!, 0);
}

/**
 * An integer flag as kube-proxy's pflag Int32 reads it (Go's strconv.ParseInt(text, 0, 32)):
 * decimal, 0x…, 0o… or 0…, 0b…, an underscore between digits; empty or anything else is refused.
 */
export function int32Flag(text: string, fail: (msg: string) => never): number {
  const m = /^([+-]?)(?:0[xX]_?([0-9a-fA-F](?:_?[0-9a-fA-F])*)|0[bB]_?([01](?:_?[01])*)|0[oO]?_?([0-7](?:_?[0-7])*)|([1-9](?:_?[0-9])*)|(0))$/.exec(text);
  if (!m) return fail(`expected an integer, got ${JSON.stringify(text)}`);
  const [radix, digits] = m[2] ? [16, m[2]] : m[3] ? [2, m[3]] : m[4] ? [8, m[4]] : [10, m[5] ?? '0'];
  const n = parseInt(digits.replace(/_/g, ''), radix) * (m[1] === '-' ? -1 : 1);
  if (n < -0x80000000 || n > 0x7fffffff) return fail(`${JSON.stringify(text)} is out of range for a 32-bit integer`);
  return n;
}

const TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];

/**
 * The boolean flags of `argv` given a value (`--masquerade-all=false`, as pflag takes them), taken
 * out and read as strconv.ParseBool reads the value; the rest of `argv` as it was.
 */
export function takeBoolValues(argv: readonly string[], isBool: (name: string) => boolean, fail: (flag: string, msg: string) => never): { rest: string[]; given: Record<string, boolean> } {
  const rest: string[] = [];
  const given: Record<string, boolean> = {};
  for (const a of argv) {
    const m = /^--([a-z][a-z0-9-]*)=(.*)$/s.exec(a);
    if (!m || !isBool(m[1]!)) {
      rest.push(a);
      continue;
    }
    if (TRUE.includes(m[2]!)) given[m[1]!] = true;
    else if (FALSE.includes(m[2]!)) given[m[1]!] = false;
    else fail(`--${m[1]}`, `expected true or false, got ${JSON.stringify(m[2])}`);
  }
  return { rest, given };
}
