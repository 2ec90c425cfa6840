// words.ts — converts between IP address bytes and the core's four raw 32-bit words (each word is
// the little-endian load of four packet bytes; IPv4 uses word 0 and zeros). Pure functions.
import { parseIP } from './packet.js';

/** parseIP that answers null instead of throwing. */
export function tryParseIP(text: string): Uint8Array | null {
  try {
    return parseIP(text);
  } catch {
    return null;
  }
}

export function ipWords(ip: Uint8Array): [number, number, number, number] {
  const w: [number, number, number, number] = [0, 0, 0, 0];
  for (let k = 0; k < ip.length / 4; k++) {
    w[k] = (ip[4 * k]! | (ip[4 * k + 1]! << 8) | (ip[4 * k + 2]! << 16) | (ip[4 * k + 3]! << 24)) >>> 0;
  }
  return w;
}

export function wordsIP(family: number, w: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(family === 4 ? 4 : 16);
  for (let k = 0; k < out.length / 4; k++) {
    const v = w[k]! >>> 0;
    out[4 * k] = v & 0xff;
    out[4 * k + 1] = (v >>> 8) & 0xff;
    out[4 * k + 2] = (v >>> 16) & 0xff;
    out[4 * k + 3] = (v >>> 24) & 0xff;
  }
  return out;
}
