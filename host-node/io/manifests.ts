// manifests.ts — a Source reading Services, EndpointSlices and Nodes from a manifests directory
// (every *.yaml, *.yml and *.json directly in it, dotfiles skipped) or from one file: multi-document
// YAML or JSON, `kind: List` and `kubectl get -o yaml` lists. Watched with fs.watch (a directory
// ConfigMap mount swapping its ..data link included) plus a debounce, or polled where fs.watch is
// unavailable; a watched directory deleted or replaced is followed to the one at the path. Every
// reload parses all files whole and applies the result as one diff (adds, updates, deletes) before
// notifying once. A file with errors keeps contributing the objects of its last error-free version
// (none if it never had one) and its issues carry file, line and field. Never interprets objects
// beyond parsing: selection and diffing live in kube/source.ts.
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { formatIssue, parseManifests, type EndpointSlice, type ManifestIssue, type Node, type Service } from '../kube/objects.js';
import { objectKey, ObjectMirror, RESOURCE_OF, type BatchListener, type KindName, type ProxySink, type Source, type SourceOptions } from '../kube/source.js';

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/** The manifest files directly in directory `dir`, by name, sorted (dotfiles skipped). */
function manifestNames(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    // ConfigMap mounts present files as symlinks; follow them, skip the ..data machinery.
    .filter((d) => !d.name.startsWith('.') && MANIFEST_FILE.test(d.name) && (d.isFile() || d.isSymbolicLink()))
    .map((d) => d.name)
    .sort();
}

/** Device and inode of the directory at `dir` ('' when there is none): which directory a path names now. */
function dirIdentity(dir: string): string {
  try {
    const st = statSync(dir);
    return st.isDirectory() ? `${st.dev}:${st.ino}` : '';
  } catch {
    return '';
  }
}

/** The manifest files of `path`: the file itself, or those directly in the directory, sorted. */
export function manifestFiles(path: string): string[] {
  return statSync(path).isDirectory() ? manifestNames(path).map((n) => join(path, n)) : [path];
}

export interface ManifestSourceOptions extends SourceOptions {
  /** A directory of manifests or a single manifest file. */
  path: string;
  /** Follow changes (default true). */
  watch?: boolean;
  /** Quiet time after the last change before reloading, in ms (default 200). */
  debounceMs?: number;
  /** Poll interval when fs.watch is unavailable or fails, in ms (default 2000). */
  pollMs?: number;
  /** Every reload's issues (errors and warnings), when there are any. */
  onIssues?: (issues: ManifestIssue[]) => void;
}

interface FileObjects {
  services: Service[];
  endpointSlices: EndpointSlice[];
  nodes: Node[];
}

export interface ReloadResult {
  /** Files read (or kept) in this reload. */
  files: number;
  issues: ManifestIssue[];
  /** True when anything reached the sink. */
  changed: boolean;
}

type Mirrors = { Service: ObjectMirror<'Service'>; EndpointSlice: ObjectMirror<'EndpointSlice'>; Node: ObjectMirror<'Node'> };

const countOf = (f: FileObjects): number => f.services.length + f.endpointSlices.length + f.nodes.length;

export class ManifestSource implements Source {
  /** The issues of the last reload. */
  issues: ManifestIssue[] = [];
  private files = new Map<string, FileObjects>();
  private mirrors: Mirrors | null = null;
  private onBatch: BatchListener = () => {};
  private isDir = false;
  private watcher: FSWatcher | null = null;
  private debounce: ReturnType<typeof setTimeout> | null = null;
  /** Every pollMs: the checks the watch cannot make (tick()). */
  private ticker: ReturnType<typeof setInterval> | null = null;
  /** The watched directory's identity (dirIdentity). */
  private watched = '';
  /** fs.watch failed here: changes are found by polling alone. */
  private watchFailed = false;
  private signature = '';
  private stopped = false;
  private readonly counters = { reloads: 0, files: 0, fileErrors: 0, polling: 0 };

  constructor(private readonly opts: ManifestSourceOptions) {}

  /** Loads everything before returning (synced on return); throws when the path does not exist. */
  start(sink: ProxySink, onBatch: BatchListener): void {
    if (this.mirrors) throw new Error('source already started');
    this.isDir = statSync(this.opts.path).isDirectory();
    this.mirrors = {
      Service: new ObjectMirror('Service', sink, this.opts),
      EndpointSlice: new ObjectMirror('EndpointSlice', sink, this.opts),
      Node: new ObjectMirror('Node', sink, this.opts),
    };
    this.onBatch = onBatch;
    this.reload();
    if (this.opts.watch !== false) this.follow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.ticker) clearInterval(this.ticker);
    this.debounce = this.ticker = null;
  }

  get synced(): boolean {
    return !!this.mirrors && this.mirrors.Service.synced && this.mirrors.EndpointSlice.synced;
  }

  stats(): Record<string, Record<string, number>> {
    this.counters.polling = this.ticker !== null && this.watcher === null ? 1 : 0;
    const out: Record<string, Record<string, number>> = { manifests: { ...this.counters } };
    if (this.mirrors) {
      for (const m of Object.values(this.mirrors)) out[RESOURCE_OF[m.kind]] = { ...m.counters, objects: m.size, synced: m.synced ? 1 : 0 };
    }
    return out;
  }

  /** File names to read, relative to the directory (or the one file's name). */
  private fileNames(): string[] {
    if (!this.isDir) return [basename(this.opts.path)];
    return manifestNames(this.opts.path);
  }

  private fullPath(name: string): string {
    return this.isDir ? join(this.opts.path, name) : this.opts.path;
  }

  /**
   * Reads and parses every file, then applies the merged objects as one diff and notifies once.
   * Synchronous: nothing can sync the dataplane in the middle of it.
   */
  reload(): ReloadResult {
    const mirrors = this.mirrors;
    if (!mirrors) throw new Error('source not started');
    this.counters.reloads++;
    // Taken before the files are read: a change made while they are read differs from it.
    if (this.opts.watch !== false) this.signature = this.currentSignature();
    const issues: ManifestIssue[] = [];
    let names: string[];
    try {
      names = this.fileNames();
      if (!this.isDir) statSync(this.opts.path);
    } catch (e) {
      // The configured path itself is gone (or mid-swap): keep everything until it is back.
      issues.push({ severity: 'error', source: this.opts.path, path: '', message: `unreadable, keeping all objects: ${(e as Error).message}` });
      names = [...this.files.keys()];
      return this.finish(issues, this.files, names.length);
    }
    const next = new Map<string, FileObjects>();
    for (const name of names) {
      const keep = (why: string): void => {
        this.counters.fileErrors++;
        const prev = this.files.get(name);
        if (prev) next.set(name, prev);
        const message = prev ? `${why}; keeping the ${countOf(prev)} object(s) of its last error-free version` : `${why}; nothing loaded from it until it is fixed`;
        issues.push({ severity: 'warning', source: name, path: '', message });
      };
      let text: string;
      try {
        text = readFileSync(this.fullPath(name), 'utf8');
      } catch (e) {
        issues.push({ severity: 'error', source: name, path: '', message: `unreadable: ${(e as Error).message}` });
        keep('file unreadable');
        continue;
      }
      const set = parseManifests(text, name);
      for (const i of set.issues) issues.push(i);   // a broken file can have 100,000s: no spread
      if (set.issues.some((i) => i.severity === 'error')) {
        keep('file has errors');
        continue;
      }
      next.set(name, { services: set.services, endpointSlices: set.endpointSlices, nodes: set.nodes });
    }
    return this.finish(issues, next, names.length);
  }

  private finish(issues: ManifestIssue[], next: Map<string, FileObjects>, files: number): ReloadResult {
    const mirrors = this.mirrors!;
    this.files = next;
    this.counters.files = files;
    // One object per key; the first file (in name order) wins and the duplicate is reported.
    const merged = { Service: new Map<string, Service>(), EndpointSlice: new Map<string, EndpointSlice>(), Node: new Map<string, Node>() };
    const firstFile = new Map<string, string>();
    for (const [name, f] of [...next.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      for (const o of [...f.services, ...f.endpointSlices, ...f.nodes]) {
        const kind: KindName = o.kind;
        const key = objectKey(kind, o.metadata);
        const target = merged[kind] as Map<string, typeof o>;
        if (target.has(key)) {
          issues.push({ severity: 'warning', source: name, line: o.origin?.line, object: `${kind} ${key}`, path: '', message: `also defined in ${firstFile.get(`${kind} ${key}`)}; that one is used` });
          continue;
        }
        target.set(key, o);
        firstFile.set(`${kind} ${key}`, name);
      }
    }
    let changed = mirrors.Service.replace(merged.Service.values());
    changed = mirrors.EndpointSlice.replace(merged.EndpointSlice.values()) || changed;
    changed = mirrors.Node.replace(merged.Node.values()) || changed;
    const first = !mirrors.Service.synced;
    mirrors.Service.markSynced();
    mirrors.EndpointSlice.markSynced();
    mirrors.Node.markSynced();
    this.issues = issues;
    if (issues.length > 0) {
      this.opts.onIssues?.(issues);
      for (const i of issues) this.opts.log?.(formatIssue(i));
    }
    this.onBatch(changed || first);
    return { files, issues, changed };
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      if (!this.stopped && !this.recheck()) this.reload();
    }, this.opts.debounceMs ?? 200);
  }

  /** The directory whose entries are watched: the path itself, or the one file's directory. */
  private watchDir(): string {
    return this.isDir ? this.opts.path : dirname(this.opts.path);
  }

  /**
   * Watches the directory at the path (for one file, its directory: editors and ConfigMap updates
   * replace files by rename), and every pollMs makes the checks a watch cannot (tick()).
   */
  private follow(): void {
    this.ticker ??= setInterval(() => this.tick(), this.opts.pollMs ?? 2000);
    const dir = this.watchDir();
    const own = basename(this.opts.path);
    const id = dirIdentity(dir);
    if (id === '') {
      this.opts.log?.(`${dir}: not there; polling until it is`);
      return;
    }
    try {
      this.watcher = watch(dir, { persistent: true }, (_event, filename) => {
        if (this.isDir || filename === null || filename === own || String(filename).startsWith('..')) this.schedule();
      });
      this.watched = id;
      this.watcher.on('error', (e) => {
        this.opts.log?.(`${dir}: watch failed (${e.message}); polling instead`);
        this.watcher?.close();
        this.watcher = null;
        this.watchFailed = true;
      });
    } catch (e) {
      this.opts.log?.(`${dir}: cannot watch (${(e as Error).message}); polling instead`);
      this.watchFailed = true;
    }
  }

  /**
   * A watch stays on the directory it was opened on: one deleted and made again, renamed away
   * with another renamed into its place, or mounted over, is not the one at the path any more and
   * the watch sees none of its changes (a deletion or rename still sends an event, a mount
   * nothing); nor does it see a file that is a link into another directory change there. So every
   * pollMs the path's directory is followed again where it changed or came back, and the files'
   * names, sizes and times are compared with those of the last reload (the whole of the change
   * detection where fs.watch failed).
   */
  private tick(): void {
    if (this.stopped || this.recheck()) return;
    if (this.watcher === null && !this.watchFailed && dirIdentity(this.watchDir()) !== '') {
      this.follow();
      this.reload();
      return;
    }
    if (this.currentSignature() !== this.signature) this.reload();
  }

  /**
   * When the watched directory is no longer the one at the path: watches that one (or waits for
   * there to be one) and reloads. True when it did.
   */
  private recheck(): boolean {
    if (this.stopped || this.watcher === null || dirIdentity(this.watchDir()) === this.watched) return false;
    this.opts.log?.(`${this.watchDir()}: removed or replaced; following the path again`);
    this.watcher.close();
    this.watcher = null;
    this.follow();
    this.reload();
    return true;
  }

  /** Names, sizes and modification times: a reload happens only when this changes. */
  private currentSignature(): string {
    try {
      return this.fileNames().map((n) => {
        const st = statSync(this.fullPath(n));
        return `${n}:${st.size}:${st.mtimeMs}`;
      }).join('|');
    } catch (e) {
      return `error:${(e as Error).message}`;
    }
  }
}
