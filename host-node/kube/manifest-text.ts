// manifest-text.ts — the quick reading of manifest text: multi-document YAML (JSON included) parsed
// by js-yaml, an order of magnitude faster than the full parser (`yaml`, with its document model)
// on the files of a large cluster, recording as it parses the line of each document and of each
// entry of a document's top-level `items` — the lines objects.ts gives the objects it reads.
// Returns null for any text that needs the full parser (objects.ts parseManifests falls back to
// it): a syntax error, anchors (the full parser caps alias expansion), directives (`%YAML 1.1`
// changes the schema), scalars and keys the two read differently, or parse events that do not
// account for every document. Never throws,
// never decides what an object means.
import { CORE_SCHEMA, loadAll, type State } from 'js-yaml';

export interface QuickDocument {
  value: unknown;
  /** 1-based line where the document's content starts. */
  line: number;
  /** 1-based lines of the entries of its top-level `items` sequence; null when it has none. */
  items: number[] | null;
}

/**
 * What js-yaml (core schema) reads otherwise than YAML 1.2 (`yaml`) does: binary and signed hex or
 * octal integers (`0b101`, `-0x1F`: numbers to js-yaml only), `+.5` and `-.5` (strings to js-yaml
 * only), `-0` (minus zero to js-yaml); null keys (`~:`, `null:`, an empty key: "null" to js-yaml,
 * "" to yaml, also as a flow entry without a value), collections as keys and explicit `?` keys
 * (stringified apart), tags, document markers run into text, and block scalars with an indentation
 * indicator. A text that may hold one goes to the full parser; manifests hold none.
 */
const DIFFERENT = new RegExp([
  /(?<![\w.-])(?:[-+]?0b[01_]|[-+]0[xo]|[-+]\.[0-9]|-0(?![\w.]))/.source,
  // A null or empty key. Blank runs are entered once, at their start, and read whole (a lookahead
  // capture matched again: no giving back): `[\s{,[](?:~|null)?[ \t]*:` tried every blank of a
  // run as a start and read the rest of it again, quadratic in the run (50,000 blanks: 2.7 s).
  /(?:^|[^\S \t]|[{,[]|(?<![ \t])[ \t])(?=(?<blanks>[ \t]*))\k<blanks>(?:(?:~|null|Null|NULL)(?=(?<after>[ \t]*))\k<after>)?:(?=[\s,[\]{}]|$)/.source,
  /[\]}][ \t]*:(?=[\s,\]}]|$)/.source,
  /\{\s*[[{]/.source,
  /(?:^|[\s{,[])\?(?=[ \t]|$)/.source,
  /[{,]\s*(?:~|null|Null|NULL)\s*(?=[,}])/.source,
  /(?:^|[\s{,[])!/.source,
  /^(?:---|\.\.\.)(?=\S)/.source,
  /[|>][-+]?[1-9]/.source,
].join('|'), 'm');

/** The documents of `text` with their lines, or null when the full parser must read it. */
export function quickDocuments(text: string): QuickDocument[] | null {
  if (text.includes('&') || /^%/m.test(text) || DIFFERENT.test(text)) return null;
  const values: unknown[] = [];
  const lines: Array<{ line: number; items: number[] | null }> = [];
  // Parse events nest: depth 0 is a document's root node, depth 1 its keys and values, depth 2 the
  // entries of those values. A top-level value closing as a sequence right after the key `items`
  // closed makes the lines of its entries the document's item lines.
  let depth = 0;
  let line = 0;
  let items: number[] | null = null;
  let entries: number[] = [];
  let afterItemsKey = false;
  const listener = (event: 'open' | 'close', st: State): void => {
    if (event === 'open') {
      if (depth === 0) {
        line = st.line + 1;
        items = null;
        afterItemsKey = false;
      } else if (depth === 1) entries = [];
      else if (depth === 2) entries.push(st.line + 1);
      depth++;
      return;
    }
    depth--;
    if (depth === 1) {
      if (afterItemsKey && st.kind === 'sequence') items = entries;
      afterItemsKey = st.kind === 'scalar' && st.result === 'items';
    } else if (depth === 0) {
      lines.push({ line, items });
    }
  };
  try {
    loadAll(text, (v) => { values.push(v); }, { schema: CORE_SCHEMA, listener });
  } catch {
    return null;
  }
  if (values.length !== lines.length) return null;
  return values.map((value, k) => ({ value, line: lines[k]!.line, items: lines[k]!.items }));
}
