// places.ts — where a restore block's appended rules came from, kept compactly: Places, one
// chain's text places (the ChainSource a large chain keeps, ruleset.ts), and the AppendLog, the
// block's appends to chains it created, held in one set of arrays for all of them. A first
// restore creates sixty thousand chains of two or three rules; three growing arrays each (rules,
// lines, places) would be most of its garbage. Never parses text and never checks a rule.

import type { Rule } from './model.js';
import { SOURCE_MIN_RULES } from './ruleset.js';

/** A growable list of text places, (from, to) offsets interleaved; `n` words used. A plain array
 *  holds them until the chain is large enough to keep its places (SOURCE_MIN_RULES): the tens of
 *  thousands of small chains a first restore makes then cost no typed array each. */
export class Places {
  private list: number[] | null = null;
  constructor(
    public buf: Uint32Array | null = null,
    public n = 0,
  ) {}

  push(from: number, to: number): void {
    let b = this.buf;
    if (b === null) {
      let l = this.list;
      if (l === null) this.list = l = [];
      l.push(from, to);
      this.n += 2;
      if (this.n < 2 * SOURCE_MIN_RULES) return;
      this.buf = b = new Uint32Array(2 * this.n);
      for (let k = 0; k < this.n; k++) b[k] = l[k]!;
      this.list = null;
      return;
    }
    if (this.n + 2 > b.length) {
      const grown = new Uint32Array(b.length * 2);
      grown.set(b);
      this.buf = b = grown;
    }
    b[this.n] = from;
    b[this.n + 1] = to;
    this.n += 2;
  }

  /** The `n` words as a typed array. */
  words(): Uint32Array {
    if (this.buf === null) this.buf = Uint32Array.from(this.list ?? []);
    this.list = null;
    return this.buf.subarray(0, this.n);
  }
}

/**
 * The appends of one restore block to the chains it created: entry i is a rule, the line it was
 * read from and its place in the text; each chain's entries are linked in order through `next`
 * (a chain's lines need not be adjacent: kube-proxy interleaves a service's chains). ChainDraft
 * builds its lists from here, at their exact sizes, when they are first read.
 */
export class AppendLog {
  readonly rules: Rule[] = [];
  next = new Int32Array(1024);
  private line = new Int32Array(1024);
  private at = new Uint32Array(2048);

  /** Adds an entry after entry `prev` of the same chain (-1: the chain's first); returns its index. */
  add(rule: Rule, line: number, from: number, to: number, prev: number): number {
    const i = this.rules.length;
    if (i === this.next.length) this.grow();
    this.rules.push(rule);
    this.next[i] = -1;
    this.line[i] = line;
    this.at[2 * i] = from;
    this.at[2 * i + 1] = to;
    if (prev >= 0) this.next[prev] = i;
    return i;
  }

  /** The lines of the `n` entries linked from `head`. */
  lines(head: number, n: number): number[] {
    const out = new Array<number>(n);
    for (let k = 0, i = head; k < n; k++, i = this.next[i]!) out[k] = this.line[i]!;
    return out;
  }

  /** The places of the `n` entries linked from `head`, as a chain's Places. */
  places(head: number, n: number): Places {
    const buf = new Uint32Array(2 * n);
    for (let k = 0, i = head; k < n; k++, i = this.next[i]!) {
      buf[2 * k] = this.at[2 * i]!;
      buf[2 * k + 1] = this.at[2 * i + 1]!;
    }
    return new Places(buf, 2 * n);
  }

  private grow(): void {
    const n = this.next.length * 2;
    const next = new Int32Array(n), line = new Int32Array(n), at = new Uint32Array(2 * n);
    next.set(this.next);
    line.set(this.line);
    at.set(this.at);
    this.next = next;
    this.line = line;
    this.at = at;
  }
}
