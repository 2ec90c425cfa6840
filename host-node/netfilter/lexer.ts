// lexer.ts — splits one iptables-restore line into words exactly as iptables-restore does, and
// quotes a string back the way iptables-save prints it. Never interprets a word (that is rule.ts).
//
// Word splitting follows iptables/xshared.c add_param_to_argv():
//   * space, tab and newline separate words; runs of them count as one separator;
//   * a double quote opens a quoted section; inside it a backslash makes the next character
//     literal and the closing quote ends the word (so `"a"b` is two words: `a`, `b`);
//   * outside quotes a backslash is an ordinary character;
//   * an empty quoted string `""` is a word of its own;
//   * an unterminated quote is refused (iptables would take the line's newline into the word and
//     later print a rule it cannot read back).
// The hot path (a line with no quote at all) is a plain character scan: no regex per word.

import { RuleError } from './ext.js';

const SPACE = 32;
const TAB = 9;
const LF = 10;
const CR = 13;
const QUOTE = 34;
const BACKSLASH = 92;

/** True for the characters add_param_to_argv() treats as word separators. */
export function isSeparator(c: number): boolean {
  return c === SPACE || c === TAB || c === LF;
}

/**
 * Splits `line` (from `start`) into words. When `ends` is given it receives, for every word, the
 * offset just past its last character in `line` (used to cut the rule text that follows a
 * command's own arguments); `quoted` receives whether each word had a quoted part.
 */
export function splitWords(line: string, start = 0, ends?: number[], quoted?: boolean[]): string[] {
  let end = line.length;
  // A trailing carriage return (CRLF files) is not part of the last word.
  if (end > start && line.charCodeAt(end - 1) === CR) end--;
  if (line.indexOf('"', start) < 0) {
    const words = splitPlain(line, start, end, ends);
    if (quoted) for (let i = 0; i < words.length; i++) quoted.push(false);
    return words;
  }
  return splitQuoted(line, start, end, ends, quoted);
}

/** Fields separated by space, tab or newline, quotes not special: strtok(" \t\n") as
 *  iptables-restore reads `*table` and `:CHAIN POLICY [p:b]` lines. */
export function splitFields(line: string): string[] {
  return splitPlain(line, 0, line.length);
}

function splitPlain(line: string, start: number, end: number, ends?: number[]): string[] {
  const words: string[] = [];
  let i = start;
  while (i < end) {
    let c = line.charCodeAt(i);
    while (isSeparator(c)) {
      if (++i >= end) return words;
      c = line.charCodeAt(i);
    }
    const from = i;
    while (i < end && !isSeparator(line.charCodeAt(i))) i++;
    words.push(line.slice(from, i));
    if (ends) ends.push(i);
  }
  return words;
}

function splitQuoted(line: string, start: number, end: number, ends?: number[], quoted?: boolean[]): string[] {
  const words: string[] = [];
  let buf = '';
  let inWord = false; // buf holds characters (or an open/closed quote) of the current word
  let quoteOpen = false;
  let escaped = false;
  for (let i = start; i < end; i++) {
    const c = line.charCodeAt(i);
    if (quoteOpen) {
      if (escaped) {
        buf += line[i];
        escaped = false;
      } else if (c === BACKSLASH) {
        escaped = true;
      } else if (c === QUOTE) {
        // The closing quote ends the word, even an empty one.
        quoteOpen = false;
        words.push(buf);
        if (ends) ends.push(i + 1);
        if (quoted) quoted.push(true);
        buf = '';
        inWord = false;
      } else {
        buf += line[i];
      }
      continue;
    }
    if (c === QUOTE) {
      quoteOpen = true;
      inWord = true;
      continue;
    }
    if (isSeparator(c)) {
      if (inWord) {
        words.push(buf);
        if (ends) ends.push(i);
        if (quoted) quoted.push(false);
        buf = '';
        inWord = false;
      }
      continue;
    }
    buf += line[i];
    inWord = true;
  }
  if (quoteOpen) throw new RuleError('"' + buf, 'unterminated quoted string');
  // iptables only keeps a trailing word that has characters in it.
  if (buf.length > 0) {
    words.push(buf);
    if (ends) ends.push(end);
    if (quoted) quoted.push(quoteOpen);
  }
  return words;
}

// Characters iptables-save prints without quotes (libxtables xtables_save_string()).
function isPlainChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45;
}

/**
 * A string argument as iptables-save prints it, including the leading space: bare when it is
 * made only of `[A-Za-z0-9_-]`, otherwise in double quotes with `"`, `\` and `'` backslashed
 * (xtables_save_string()).
 */
export function saveString(value: string): string {
  let plain = value.length > 0;
  for (let i = 0; plain && i < value.length; i++) plain = isPlainChar(value.charCodeAt(i));
  if (plain) return ' ' + value;
  let out = ' "';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '"' || ch === '\\' || ch === "'") out += '\\';
    out += ch;
  }
  return out + '"';
}

/**
 * Quotes a word so that splitWords() reads it back unchanged (used when a rule built in code is
 * rendered as restore input): bare when it needs no quoting, else like saveString().
 */
export function quoteWord(value: string): string {
  if (value.length > 0 && value.indexOf('"') < 0 && !/[\s\\']/.test(value)) return value;
  return saveString(value).slice(1);
}

/**
 * Copies a string so it no longer shares storage with the (possibly huge) restore text it was
 * sliced from. V8 keeps a substring as a view on its parent; a long-lived cache of views would
 * keep every restore text alive. Concatenation flattens into a fresh string.
 */
export function detach(s: string): string {
  return (s + ' ').slice(0, -1);
}

/**
 * The first three fields of a `:CHAIN POLICY [p:b]` line, as splitFields() reads them; the common
 * `:NAME - [0:0]` (single spaces, nothing after) without the word array.
 */
export function declFields(rest: string): (string | undefined)[] {
  const a = rest.indexOf(' ');
  if (a > 0 && rest.charCodeAt(a + 1) === 45 && rest.charCodeAt(a + 2) === 32 && rest.indexOf(' ', a + 3) < 0) {
    const name = rest.slice(0, a);
    const ctrs = rest.slice(a + 3);
    if (!hasSeparator(name) && ctrs !== '' && !hasSeparator(ctrs)) return [name, '-', ctrs];
  }
  return splitFields(rest);
}

function hasSeparator(s: string): boolean {
  return s.indexOf('\t') >= 0 || s.indexOf('\n') >= 0;
}
