// yaml-depth.ts — the nesting check every YAML or JSON text a user hands in passes before a parser
// sees it (manifests, the proxy's config file, the playground's editor). The parsers recurse once
// per nesting level; deep enough (about 800 flow levels under Node), V8 runs out of stack, and when
// that happens inside its regular-expression compiler the overflow ends the process instead of
// throwing. Kubernetes objects nest a few dozen levels at most, so text nested deeper than
// YAML_MAX_DEPTH is refused. yamlTooDeep bounds the nesting from the characters alone (the quick
// parser's gate); yamlDocuments is the full parser's entry: it measures the syntax tree the parser
// built, without recursion, before the document composer recurses into it, since the parser also
// nests wrong text in ways no character count foresees (`a: ? ? ? …` on one line), and it checks
// keys in linear time (duplicates; lists and mappings as keys). Never throws, never reads objects.
import { Composer, isAlias, isCollection, isScalar, LineCounter, Parser, visit, YAMLParseError, type CST, type Document, type DocumentOptions, type ErrorCode, type Node as YamlNode, type SchemaOptions } from 'yaml';

/** Nesting levels a text may reach (flow and block together). */
export const YAML_MAX_DEPTH = 256;

/** What a text nested deeper is told. */
export const TOO_DEEP = `nested more than ${YAML_MAX_DEPTH} levels deep: not read`;

const SPACE = 32, TAB = 9, CR = 13, HASH = 35, DASH = 45, QUESTION = 63, DOT = 46;
const OPEN_CURLY = 123, CLOSE_CURLY = 125;

const isBlank = (c: number): boolean => c === SPACE || c === TAB;

/** `---` or `...` at the start of a line, alone or followed by a blank: a document boundary. */
function documentMarker(text: string, at: number, end: number): boolean {
  const c = text.charCodeAt(at);
  if ((c !== DASH && c !== DOT) || text.charCodeAt(at + 1) !== c || text.charCodeAt(at + 2) !== c) return false;
  return at + 3 >= end || isBlank(text.charCodeAt(at + 3)) || text.charCodeAt(at + 3) === CR;
}

/**
 * The 1-based line on which `text` may nest deeper than `max` levels, or 0 when it cannot. An upper
 * bound of what a parser meets: every `[` and `{` counts until its closing bracket, wherever it
 * stands (quoted strings and comments too), within a document; block levels are the indentations
 * still open at a line, plus one per `- ` or `? ` entry opened on the same line (`- - - x`).
 */
export function yamlTooDeep(text: string, max = YAML_MAX_DEPTH): number {
  const open: number[] = [];   // columns of the block levels open at this line
  let flow = 0;
  let line = 0;
  for (let pos = 0; pos < text.length; line++) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    if (documentMarker(text, pos, end)) {
      open.length = 0;
      flow = 0;
    }
    let i = pos;
    while (i < end && isBlank(text.charCodeAt(i))) i++;
    const first = text.charCodeAt(i);
    if (i < end && first !== HASH && first !== CR) {
      let col = i - pos;
      while (open.length > 0 && open[open.length - 1]! >= col) open.pop();
      open.push(col);
      // Compact entries: each `-` or `?` followed by a blank opens a level inside this line.
      for (let c = text.charCodeAt(i); (c === DASH || c === QUESTION) && (i + 1 >= end || isBlank(text.charCodeAt(i + 1))); c = text.charCodeAt(i)) {
        i++;
        while (i < end && isBlank(text.charCodeAt(i))) i++;
        col = i - pos;
        open.push(col);
      }
    }
    if (open.length + flow > max) return line + 1;
    for (let k = pos; k < end; k++) {
      // '[' and '{' differ in bit 5 only, as ']' and '}' do: no other character ORed with it meets them.
      const c = text.charCodeAt(k) | 32;
      if (c === OPEN_CURLY) {
        if (open.length + ++flow > max) return line + 1;
      } else if (c === CLOSE_CURLY && flow > 0) flow--;
    }
    pos = end + 1;
  }
  return 0;
}

/**
 * The first object under `root` at which levels (objects `isLevel` says are one) nest deeper than
 * `max`, or null. Iterative: the point is to look before anything recursive does.
 */
function firstTooDeep(root: unknown, max: number, isLevel: (o: object) => boolean): object | null {
  const todo: unknown[] = [root];
  const depths: number[] = [0];
  while (todo.length > 0) {
    const x = todo.pop();
    let depth = depths.pop()!;
    if (x === null || typeof x !== 'object' || ArrayBuffer.isView(x)) continue;
    if (isLevel(x) && ++depth > max) return x;
    for (const y of Array.isArray(x) ? x : Object.values(x)) if (y !== null && typeof y === 'object') todo.push(y), depths.push(depth);
  }
  return null;
}

/**
 * Whether JavaScript value `v` (decoded JSON or msgpack) nests lists and objects deeper than `max`:
 * the YAML printer recurses once per level too (a thousand levels overflowed it).
 */
export function valueTooDeep(v: unknown, max = YAML_MAX_DEPTH): boolean {
  return firstTooDeep(v, max, () => true) !== null;
}

const COLLECTIONS = new Set(['block-map', 'block-seq', 'flow-collection']);

/**
 * The offset of the first collection in syntax token `top` nested deeper than `max` levels, or -1.
 * Every object and list under a token is walked (items, keys, values, props): error recovery can
 * put a collection in unexpected places.
 */
function tokenTooDeep(top: CST.Token, max: number): number {
  const at = firstTooDeep(top, max, (o) => COLLECTIONS.has((o as { type?: string }).type ?? ''));
  return at === null ? -1 : ((at as { offset?: number }).offset ?? 0);
}

/**
 * The documents of `text` as the `yaml` package's parseAllDocuments reads them, each error and
 * warning with its line and column (`linePos`), or the 1-based line where the text nests deeper
 * than YAML_MAX_DEPTH (nothing composed from there on).
 */
export function yamlDocuments(text: string, options: DocumentOptions & SchemaOptions & { lineCounter?: LineCounter } = {}): { docs: Document.Parsed[] } | { deep: number } {
  const lc = options.lineCounter ?? new LineCounter();
  const rough = yamlTooDeep(text);
  if (rough !== 0) return { deep: rough };
  let deepAt = -1;
  const tokens = new Parser(lc.addNewLine).parse(text);
  function* checked(): Generator<CST.Token> {
    for (const token of tokens) {
      deepAt = tokenTooDeep(token, YAML_MAX_DEPTH);
      if (deepAt >= 0) return;
      yield token;
    }
  }
  // The parser makes an Error per problem; their stacks (never read) were half the time of
  // reading text that is all problems.
  const errors = Error as { stackTraceLimit?: number };   // V8's; elsewhere a harmless property
  const stackLimit = errors.stackTraceLimit;
  errors.stackTraceLimit = 0;
  let docs: Document.Parsed[];
  try {
    // Duplicate keys are found below, by value in a set: the composer's own check compares each
    // key with every earlier one of its mapping (40,000 keys took 11 s).
    docs = Array.from(new Composer({ ...options, uniqueKeys: false }).compose(checked())) as Document.Parsed[];
  } finally {
    errors.stackTraceLimit = stackLimit;
  }
  if (deepAt >= 0) return { deep: lc.linePos(deepAt).line };
  for (const doc of docs) {
    const fault = (node: YamlNode, code: ErrorCode, message: string) => {
      const at = node.range?.[0] ?? 0;
      doc.errors.push(new YAMLParseError([at, at + 1], code, message));
    };
    visit(doc, {
      Pair(_, pair) {
        // A key that is a collection (or an alias, which may name one) becomes text only by
        // printing it whole, keys inside keys again at every level: 20 KB nested a hundred deep
        // took a minute. Kubernetes objects, JSON at heart, have none.
        // So is a `!!binary` key (its value is bytes): the package made it text with a process
        // warning of its own.
        const key = pair.key as YamlNode | null;
        if (!isCollection(key) && !isAlias(key) && !(isScalar(key) && typeof key.value === 'object' && key.value !== null)) return undefined;
        fault(key!, 'NON_STRING_KEY', 'a mapping key must be a single value, not a list, a mapping or an alias');
        return visit.BREAK;
      },
      Map(_, map) {
        const seen = new Set<unknown>();
        for (const pair of map.items) {
          const key = pair.key as YamlNode | null;
          const value = isScalar(key) ? key.value : key;
          // The composer's test: the same value (===); NaN is no key's duplicate.
          if (value !== value) continue;
          if (seen.has(value)) fault(key ?? map, 'DUPLICATE_KEY', 'Map keys must be unique');
          seen.add(value);
        }
        return undefined;
      },
    });
    for (const e of [...doc.errors, ...doc.warnings]) if (e.pos[0] >= 0) e.linePos ??= [lc.linePos(e.pos[0]), lc.linePos(e.pos[1])];
  }
  return { docs };
}
