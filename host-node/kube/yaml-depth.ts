// yaml-depth.ts — the nesting check every YAML or JSON text a user hands in passes before a parser
// sees it (manifests, the proxy's config file, the playground's editor). The parsers recurse once
// per nesting level; deep enough (about 800 flow levels under Node), V8 runs out of stack, and when
// that happens inside its regular-expression compiler the overflow ends the process instead of
// throwing. Kubernetes objects nest a few dozen levels at most, so text nested deeper than
// YAML_MAX_DEPTH is refused unread. Reads characters only: never parses, never throws.

/** Nesting levels a text may reach (flow and block together). */
export const YAML_MAX_DEPTH = 256;

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
