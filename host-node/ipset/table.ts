// ipset/table.ts — IpsetTable, the typed API over the ipset text front end and the core:
// `restore(text)` (atomic: validated and applied against a staged copy of the model and a core
// transaction, committed whole or not at all — stricter than ipset itself, which keeps the lines
// before a failing one), `command(argv | line)` for single commands, `save()`, `list()`, `test()`
// and `reap()` for expired elements. Set names map to the core's numeric set ids through `setId`
// (share the iptables compiler's so `-m set` rules and sets agree). Never touches files or clocks
// beyond the `now` it is given.
import { tokenize, parseCommand, type Command, type GlobalOpts } from './command.js';
import { Model, type IpSet, type RefCounter } from './model.js';
import { parseEntry } from './element.js';
import { renderList, renderNames, renderSave, type RenderOpts } from './render.js';
import { CoreSink, type IpsetCore } from './core.js';
import { IpsetError, usage, kernel, fromKernel, MSG, IPSET_VERSION } from './errors.js';

export interface IpsetTableOptions {
  /** The core's id for a set name (default: ids handed out in order of first use, never reused). */
  setId?: (name: string) => number;
  /** References to a set from rules (default: none). Referenced sets cannot be destroyed or renamed. */
  references?: RefCounter;
  /** The clock, in ms (default Date.now): the same time base the packets are processed with
   * (the core compares element expiry times with the packet's `nowMs`). */
  now?: () => number;
  /** Seed for the initval of sets created without one. */
  seed?: number;
}

export interface CommandResult {
  /** ipset's exit status: 0, or 1 for a `test` that did not find the entry. */
  status: 0 | 1;
  /** What ipset prints (list, save, test, version); '' for the rest. */
  output: string;
}

export interface ListOpts {
  terse?: boolean;
  names?: boolean;
  output?: 'plain' | 'save';
}

export class IpsetTable {
  private model: Model;
  private readonly sink: CoreSink;
  private readonly ids = new Map<string, number>();
  private readonly clock: () => number;
  private readonly refs: RefCounter;
  private rng: number;

  constructor(private readonly core: IpsetCore, opts: IpsetTableOptions = {}) {
    this.clock = opts.now ?? (() => Date.now());
    this.refs = opts.references ?? (() => 0);
    this.rng = (opts.seed ?? 0x5eed1) >>> 0;
    const setId = opts.setId ?? ((name: string) => {
      let id = this.ids.get(name);
      if (id === undefined) this.ids.set(name, (id = this.ids.size));
      return id;
    });
    this.sink = new CoreSink(core, setId);
    this.model = new Model(this.refs, () => this.nextInitval());
  }

  // xorshift32: initvals for sets created without one (the kernel draws a random one).
  private nextInitval(): number {
    let x = this.rng || 1;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.rng = x;
    return x;
  }

  /** Names of the sets, in the kernel's listing order. */
  names(): string[] {
    return this.model.ordered().map((s) => s.name);
  }

  /** A set's model (read-only use), or undefined. */
  get(name: string): IpSet | undefined {
    return this.model.sets.get(name);
  }

  /**
   * `ipset restore`: every line applied to a staged copy; on the first error nothing changes and the
   * IpsetError names the line (as "Error in line N: …") and the word at fault.
   *
   * Which error comes first follows ipset 7.17, which sends consecutive adds (or dels) to one set
   * to the kernel as one batch, once the line after them has been read: a line that does not parse
   * (or adds to a set that does not exist) is reported before the kernel's refusal of an earlier
   * line of the batch, which the kernel never saw. (ipset also sends a batch whose buffer fills;
   * a restore stops at its first error either way.)
   */
  restore(text: string, opts: { exist?: boolean } = {}): void {
    if (typeof text !== 'string') throw usage(`restore: the input is text, not ${text === null ? 'null' : typeof text}`);
    opts ??= {};
    const now = this.clock();
    const draft = this.model.fork();
    this.sink.now = now;
    const began = this.core.ipsetBegin();
    if (began < 0) throw kernel(`Kernel error received: a restore is already in progress (${began})`);
    const lines = text.split('\n');
    // The batch being gathered, and the kernel's refusal of one of its lines (reported when sent).
    let batch: { name: string; cmd: string; refused: IpsetError | null } | null = null;
    const send = (): void => {
      const refused = batch?.refused;
      batch = null;
      if (refused) throw refused;
    };
    try {
      lines.forEach((raw, i) => {
        const line = raw.trim();
        if (line === '' || line.startsWith('#')) return;
        let refused: IpsetError | null = null;
        let command: Command;
        let lookedUp = false;
        try {
          const parsed = parseCommand(tokenize(line));
          command = parsed.command;
          if (['restore', 'list', 'save', 'help', 'version'].includes(command.cmd)) {
            throw usage(`Command \`${command.cmd}' is not supported in restore mode`, command.cmd);
          }
          // An element's set is looked up as its line is read (its type says how to read it).
          if (command.cmd === 'add' || command.cmd === 'del' || command.cmd === 'test') draft.get(command.name);
          lookedUp = true;
          this.apply(draft, command, { ...parsed.global, exist: parsed.global.exist || (opts.exist ?? false) }, now);
        } catch (e) {
          if (!(e instanceof IpsetError)) throw e;
          e.at(i + 1);
          if (!fromKernel(e) || !lookedUp) throw e;
          refused = e;
        }
        const c = command!;
        if (c.cmd === 'add' || c.cmd === 'del') {
          if (batch && (batch.name !== c.name || batch.cmd !== c.cmd)) send();
          batch ??= { name: c.name, cmd: c.cmd, refused: null };
          batch.refused ??= refused;
          return;
        }
        send();
        if (refused) throw refused;
      });
      send();
    } catch (e) {
      this.core.ipsetAbort();
      throw e;
    }
    const rc = this.core.ipsetCommit();
    if (rc < 0) throw kernel(`Kernel error received: commit failed (${rc})`);
    this.model = draft;
  }

  /**
   * One ipset command (argv without the program name, or a line). Changes apply at once; an add or
   * del whose entry expands to several elements applies whole or not at all.
   */
  command(args: readonly string[] | string): CommandResult {
    if (typeof args !== 'string' && !(Array.isArray(args) && args.every((a) => typeof a === 'string'))) throw usage('a command is a line of text or a list of words');
    const { command, global } = parseCommand(typeof args === 'string' ? tokenize(args) : args);
    const now = this.clock();
    this.sink.now = now;
    switch (command.cmd) {
      case 'restore': throw usage('restore takes its input from IpsetTable.restore()', 'restore');
      case 'version': return { status: 0, output: `ipset ${IPSET_VERSION}, protocol version: 7\n` };
      case 'help': return { status: 0, output: `ipset ${IPSET_VERSION}\n` };
      case 'list': return { status: 0, output: this.list(command.name ?? undefined, this.listOpts(global)) };
      case 'save': return { status: 0, output: this.save(command.name ?? undefined) };
      case 'test': {
        const r = this.model.test(command.name, command.entry, command.rest, this.sink);
        return r.found
          ? { status: 0, output: `Warning: ${r.text} is in set ${command.name}.\n` }
          : { status: 1, output: `${r.text} is NOT in set ${command.name}.\n` };
      }
      case 'add': case 'del': {
        const s = this.model.get(command.name);
        if (parseEntry(s.def, s.family, command.entry, command.cmd).count > 1) {
          this.restoreOne(command, global, now);
          return { status: 0, output: '' };
        }
      }
    }
    this.apply(this.model, command, global, now);
    return { status: 0, output: '' };
  }

  private restoreOne(command: Command, global: GlobalOpts, now: number): void {
    const draft = this.model.fork();
    if (this.core.ipsetBegin() < 0) throw kernel('Kernel error received: a restore is already in progress');
    try {
      this.apply(draft, command, global, now);
    } catch (e) {
      this.core.ipsetAbort();
      throw e;
    }
    this.core.ipsetCommit();
    this.model = draft;
  }

  private apply(m: Model, c: Command, g: GlobalOpts, now: number): void {
    switch (c.cmd) {
      case 'create': return m.create(c.name, c.def, c.opts, g.exist, this.sink);
      case 'destroy': return m.destroy(c.name, this.sink);
      case 'flush': return m.flush(c.name, this.sink);
      case 'rename': return m.rename(c.from, c.to, this.sink);
      case 'swap': return m.swap(c.from, c.to, this.sink);
      case 'add': return m.add(c.name, c.entry, c.rest, g.exist, now, this.sink);
      case 'del': return m.del(c.name, c.entry, c.rest, g.exist, now, this.sink);
      case 'test': {
        // In restore mode a failing test ends the restore with status 1, printed bare as ipset does.
        const r = m.test(c.name, c.entry, c.rest, this.sink);
        if (!r.found) {
          const e = kernel(`${r.text} is NOT in set ${c.name}.`, c.entry);
          e.bare = true;
          throw e.at(0);
        }
        return;
      }
      default: throw usage(`Command \`${c.cmd}' is not supported here`, c.cmd);
    }
  }

  private listOpts(g: GlobalOpts): ListOpts {
    return { terse: g.terse, names: g.names, output: g.output === 'save' ? 'save' : 'plain' };
  }

  private renderOpts(now: number): RenderOpts {
    this.sink.now = now;
    return { now, refs: this.refs, counters: (s, m) => this.sink.counters(s, m.el) };
  }

  private pick(name?: string): IpSet[] {
    if (name === undefined) return this.model.ordered();
    const s = this.model.sets.get(name);
    if (!s) throw kernel(MSG.noSet, name);
    return [s];
  }

  /** `ipset list [NAME]` (with -terse, -name, -output save). */
  list(name?: string, opts: ListOpts = {}): string {
    const sets = this.pick(name);
    if (opts.names) return renderNames(sets);
    const ro = this.renderOpts(this.clock());
    if (opts.output === 'save') return renderSave(sets, ro);
    return renderList(sets, ro, opts.terse ?? false);
  }

  /** `ipset save [NAME]`. */
  save(name?: string): string {
    return renderSave(this.pick(name), this.renderOpts(this.clock()));
  }

  /** `ipset test NAME ENTRY`: whether the entry is in the set (throws for a bad entry or set). */
  test(name: string, entry: string): boolean {
    if (typeof name !== 'string' || typeof entry !== 'string') throw usage('test: a set name and an entry, as text');
    this.sink.now = this.clock();
    return this.model.test(name, entry, [], this.sink).found;
  }

  /** Drops expired elements from the model and the core. Returns how many the core removed. */
  reap(): number {
    const now = this.clock();
    for (const s of this.model.sets.values()) s.purge(now);
    return this.core.ipsetReap(now, 1 << 16);
  }
}
