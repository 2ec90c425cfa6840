// ipset/errors.ts — errors as the ipset tool words and prints them. Three kinds, as ipset 7.x has:
// `syntax` (the element or an option value does not parse; exit status 1), `kernel` (the kernel
// refused the operation — the messages of ipset's lib/errcode.c; exit status 1) and `usage`
// (unknown or missing arguments; exit status 2, followed by the "Try `ipset help'" line). In restore
// mode syntax and kernel errors carry "Error in line N: ", usage errors do not (as the tool prints
// them). Never decides anything itself.

export const IPSET_VERSION = 'v7.17';

export type IpsetErrorKind = 'syntax' | 'kernel' | 'usage';

export class IpsetError extends Error {
  /** 1-based line of restore input (0: a single command). */
  line: number;
  constructor(
    readonly kind: IpsetErrorKind,
    /** The message without the `ipset vX:` prefix and line number. */
    readonly detail: string,
    /** The word of input at fault ('' when none). */
    readonly word = '',
    line = 0,
  ) {
    super('');
    this.line = line;
    this.message = this.format();
  }

  /** ipset's exit status for this error. */
  get exitCode(): 1 | 2 {
    return this.kind === 'usage' ? 2 : 1;
  }

  at(line: number): IpsetError {
    this.line = line;
    this.message = this.format();
    return this;
  }

  /** ipset reports this one without its line even in restore mode (the port parser's errors). */
  noLine = false;
  /** What ipset prints instead in restore mode, numbered (null: the same). */
  private restoreDetail: string | null = null;

  /** Prints `detail`, with its line, when this comes from a restore. */
  inRestore(detail: string): IpsetError {
    this.restoreDetail = detail;
    this.message = this.format();
    return this;
  }
  /** ipset prints this one bare, without the `ipset vX:` prefix (a failing `test` in restore). */
  bare = false;

  private format(): string {
    if (this.bare) return this.detail;
    const restored = this.line > 0 && this.restoreDetail !== null;
    const where = this.line > 0 && this.kind !== 'usage' && (!this.noLine || restored) ? `Error in line ${this.line}: ` : '';
    const tail = this.kind === 'usage' ? "\nTry `ipset help' for more information." : '';
    return `ipset ${IPSET_VERSION}: ${where}${restored ? this.restoreDetail : this.detail}${tail}`;
  }
}

export const syntax = (detail: string, word = '') => new IpsetError('syntax', `Syntax error: ${detail}`, word);
export const usage = (detail: string, word = '') => new IpsetError('usage', detail, word);
export const kernel = (detail: string, word = '') => new IpsetError('kernel', detail, word);

// lib/errcode.c messages, by situation.
export const MSG = {
  setExists: 'Set cannot be created: set with the same name already exists',
  noSet: 'The set with the given name does not exist',
  exist: "Element cannot be added to the set: it's already added",
  notExist: "Element cannot be deleted from the set: it's not added",
  full: 'Hash is full, cannot add more elements',
  range: 'Element is out of the range of the set',
  cidr: 'The value of the CIDR parameter of the IP address is invalid',
  noTimeout: 'Timeout cannot be used: set was created without timeout support',
  noComment: 'Comment cannot be used: set was created without comment support',
  noCounters: 'Packet/byte counters cannot be used: set was created without counter support',
  nullElem: 'Null-valued element, cannot be stored in a hash type of set',
  renameExists: 'Set cannot be renamed: a set with the new name already exists',
  renameInUse: 'Set cannot be renamed: it is in use by another system',
  swapType: 'The sets cannot be swapped: their type does not match',
  swapSecond: 'Sets cannot be swapped: the second set does not exist',
  destroyInUse: 'Set cannot be destroyed: it is in use by a kernel component',
  noMemory: 'Kernel error received: Cannot allocate memory',
  invalidProto: 'Invalid protocol specified',
  invalid: 'Kernel error received: Invalid argument',
  typeUnsupported: 'Kernel error received: set type not supported',
  // ERANGE: a range longer than svcplane walks (model.ts WALK_LIMIT), as kernels 5.15-6.1 refused it.
  tooMany: 'Kernel error received: Numerical result out of range',
} as const;

const KERNEL_MESSAGES: ReadonlySet<string> = new Set(Object.values(MSG));

/**
 * The kernel's own refusal (an errno lib/errcode.c words, or a failed test's answer), as against
 * what ipset's parser says in the same words before anything reaches the kernel.
 */
export function fromKernel(e: IpsetError): boolean {
  return e.kind === 'kernel' && (e.bare || KERNEL_MESSAGES.has(e.detail));
}

/** A syntax error whose message is several lines (ipset prints each parser's complaint). */
export function syntaxLines(lines: string[], word = ''): IpsetError {
  const e = new IpsetError('syntax', lines.join('\n'), word);
  e.noLine = true;
  return e;
}
