// Word splitting as iptables-restore does it, quoting as iptables-save does it, and the address
// forms iptables reads and prints.
import { describe, expect, it } from 'vitest';
import { formatIPv6, maskPrefix, parseHostMask, parseIPv4, parseIPv6, parseInetAton, prefixMask, scanUint } from '../../../host-node/netfilter/addr.js';
import { quoteWord, saveString, splitWords } from '../../../host-node/netfilter/lexer.js';

describe('splitWords (add_param_to_argv)', () => {
  it('splits on spaces, tabs and runs of them', () => {
    expect(splitWords('-A  KUBE\t-j   ACCEPT  ')).toEqual(['-A', 'KUBE', '-j', 'ACCEPT']);
    expect(splitWords('')).toEqual([]);
    expect(splitWords('   ')).toEqual([]);
  });

  it('keeps a quoted section as one word, backslash-escapes inside quotes only', () => {
    expect(splitWords('--comment "a b\\"c\\\\d" -j X')).toEqual(['--comment', 'a b"c\\d', '-j', 'X']);
    expect(splitWords('a\\b "x"')).toEqual(['a\\b', 'x']);
  });

  it('ends a word at the closing quote, keeps empty quoted words, refuses an open quote', () => {
    expect(splitWords('"a"b')).toEqual(['a', 'b']);
    expect(splitWords('x"y z"')).toEqual(['xy z']);
    expect(splitWords('--comment "" -j X')).toEqual(['--comment', '', '-j', 'X']);
    expect(() => splitWords('--comment "open to the end')).toThrow('unterminated quoted string');
  });

  it('ignores a trailing carriage return and reports word ends', () => {
    const ends: number[] = [];
    expect(splitWords('-A X -j Y\r', 0, ends)).toEqual(['-A', 'X', '-j', 'Y']);
    expect(ends).toEqual([2, 4, 7, 9]);
  });
});

describe('saveString (xtables_save_string)', () => {
  it('prints safe words bare and everything else quoted with escapes', () => {
    expect(saveString('plain_word-1')).toBe(' plain_word-1');
    expect(saveString('ns1/svc1:p80')).toBe(' "ns1/svc1:p80"');
    expect(saveString('say "hi" \\ it\'s')).toBe(' "say \\"hi\\" \\\\ it\\\'s"');
    expect(saveString('')).toBe(' ""');
  });

  it('quoteWord reads back through splitWords unchanged', () => {
    for (const w of ['plain', 'two words', 'q"uote', 'back\\slash', '', "it's"]) {
      expect(splitWords(quoteWord(w))).toEqual([w]);
    }
  });
});

describe('addresses', () => {
  it('reads IPv4 like libxtables: base-0 octets, short forms, masks need four parts', () => {
    expect(parseIPv4('192.168.1.1')).toBe(0xc0a80101);
    expect(parseIPv4('10')).toBe(0x0a000000);
    expect(parseIPv4('10.1')).toBe(0x0a010000);
    expect(parseIPv4('0x0a.010.0.1')).toBe(0x0a080001);
    expect(parseIPv4('1.2.3.256')).toBeNull();
    expect(parseIPv4('1.2.3.4.5')).toBeNull();
    expect(parseIPv4('08.1.1.1')).toBeNull();
    expect(parseIPv4('255.255')).not.toBeNull();
    expect(parseIPv4('255.255', true)).toBeNull();
    expect(scanUint(' +0x1fz', 0)).toEqual({ value: 31, end: 6 });
    // What the xtables reader refuses goes to inet_aton() (through getaddrinfo()), as there.
    expect(parseInetAton('8080')).toBe(0x00001f90);
    expect(parseInetAton('10.300')).toBe(0x0a00012c);
    expect(parseInetAton('1.2.3.400')).toBeNull();
    expect(parseHostMask('8080', 4)).toMatchObject({ addr: [0x1f90, 0, 0, 0], prefix: 32 });
  });

  it('reads IPv6 like inet_pton', () => {
    expect(parseIPv6('::')).toEqual([0, 0, 0, 0]);
    expect(parseIPv6('::1')).toEqual([0, 0, 0, 1]);
    expect(parseIPv6('fd00::')).toEqual([0xfd000000, 0, 0, 0]);
    expect(parseIPv6('1:2:3:4:5:6:7:8')).toEqual([0x00010002, 0x00030004, 0x00050006, 0x00070008]);
    expect(parseIPv6('::ffff:1.2.3.4')).toEqual([0, 0, 0xffff, 0x01020304]);
    for (const bad of ['1:2:3:4:5:6:7:8:9', '1::2::3', ':1::', '1:2:3:4:5:6:7:8::', '12345::', 'fd00::g', '1:']) {
      expect(parseIPv6(bad)).toBeNull();
    }
  });

  it('prints IPv6 like glibc inet_ntop', () => {
    expect(formatIPv6([0, 0, 0, 0])).toBe('::');
    expect(formatIPv6([0, 0, 0, 1])).toBe('::1');
    expect(formatIPv6([0xfd000010, 0, 0, 5])).toBe('fd00:10::5');
    expect(formatIPv6([0x00010000, 0, 0x00010000, 0])).toBe('1::1:0:0:0');
    expect(formatIPv6([0x00010000, 0x00010000, 0x00010000, 0x00010000])).toBe('1:0:1:0:1:0:1:0');
    expect(formatIPv6([0, 0, 0xffff, 0x01020304])).toBe('::ffff:1.2.3.4');
    expect(formatIPv6([0xffffffff, 0xffffffff, 0, 0])).toBe('ffff:ffff:ffff:ffff::');
  });

  it('converts masks and prefixes both ways', () => {
    expect(prefixMask(4, 24)).toEqual([0xffffff00, 0, 0, 0]);
    expect(prefixMask(6, 80)).toEqual([0xffffffff, 0xffffffff, 0xffff0000, 0]);
    expect(maskPrefix(6, prefixMask(6, 80))).toBe(80);
    expect(maskPrefix(4, [0xff00ff00, 0, 0, 0])).toBe(-1);
    expect(maskPrefix(4, [0, 0, 0, 0])).toBe(0);
    expect(() => parseHostMask('10.0.0.0/x', 4)).toThrow("invalid mask `x' specified");
    expect(parseHostMask('fd00::1/ffff::', 6)).toMatchObject({ addr: [0xfd000000, 0, 0, 0], prefix: 16 });
  });
});
