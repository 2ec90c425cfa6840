// files.ts — the replay tool's file access over WASI preview 1: resolves a path against the
// directories the runtime preopened (longest prefix wins, relative paths against "."), reads a whole
// file into memory or streams it in pieces, and writes output through a buffer flushed in large chunks. Errors come back as
// false / -1 with fileError naming the path's problem; nothing here traps. Never touches packets.
import {
  fd_prestat_get, fd_prestat_dir_name, path_open, fd_read, fd_write, fd_close, fd_filestat_get,
  errno, rights, oflags, lookupflags, fd, prestat, filestat,
} from "bindings/wasi_snapshot_preview1";

export let fileError: string = "";

const scratch: usize = heap.alloc(256);
const MAX_PREOPENS = 32;

/** Preopened directory names and fds, learnt once. */
let preNames: string[] = [];
let preFds: i32[] = [];

function preopens(): void {
  if (preFds.length > 0) return;
  for (let f: u32 = 3; f < 3 + MAX_PREOPENS; f++) {
    if (fd_prestat_get(f, changetype<prestat>(scratch)) != errno.SUCCESS) break;
    if (load<u8>(scratch) != 0) continue;       // not a directory
    const n = load<u32>(scratch, 4);
    const buf = heap.alloc(<usize>n + 1);
    if (fd_prestat_dir_name(f, buf, n) == errno.SUCCESS) {
      let name = String.UTF8.decodeUnsafe(buf, n);
      while (name.length > 1 && name.endsWith("/")) name = name.substring(0, name.length - 1);
      preNames.push(name);
      preFds.push(<i32>f);
    }
    heap.free(buf);
  }
}

// The preopen holding `path` and the rest of the path under it.
function resolve(path: string): i32 {
  preopens();
  let best = -1, bestLen = -1;
  for (let i = 0; i < preNames.length; i++) {
    const d = preNames[i];
    let inside = false;
    if (d == "/") inside = path.startsWith("/");
    else if (d == "." ) inside = !path.startsWith("/");
    else inside = path == d || path.startsWith(d + "/");
    if (inside && d.length > bestLen) { best = i; bestLen = d.length; }
  }
  return best;
}

function openAt(path: string, write: bool): i32 {
  const i = resolve(path);
  if (i < 0) { fileError = "not inside a directory the runtime made available"; return -1; }
  const d = preNames[i];
  let rel = d == "." ? path : d == "/" ? path.substring(1) : path.substring(d.length + 1);
  if (rel.length == 0) rel = ".";
  const bytes = String.UTF8.encode(rel);
  const base: u64 = write ? rights.FD_WRITE | rights.FD_FILESTAT_GET : rights.FD_READ | rights.FD_SEEK | rights.FD_FILESTAT_GET;
  const err = path_open(<fd>preFds[i], lookupflags.SYMLINK_FOLLOW, changetype<usize>(bytes), bytes.byteLength,
    write ? oflags.CREAT | oflags.TRUNC : 0, base, 0, 0, scratch);
  if (err != errno.SUCCESS) { fileError = write ? "cannot be created" : "cannot be opened"; return -1; }
  return load<i32>(scratch);
}

/** Opens a file for reading: its descriptor, or -1 with fileError set. */
export function openRead(path: string): i32 {
  return openAt(path, false);
}

/** Reads up to `len` bytes into `ptr`: the count (0 at the end), or -1 on an error. */
export function readInto(f: i32, ptr: usize, len: usize): isize {
  store<usize>(scratch, ptr);
  store<usize>(scratch, len, sizeof<usize>());
  if (fd_read(<fd>f, scratch, 1, scratch + 16) != errno.SUCCESS) return -1;
  return <isize>load<usize>(scratch, 16);
}

/** Reads the whole file: its bytes at `readPtr`, `readLen` of them. False with fileError set. */
export let readPtr: usize = 0;
export let readLen: usize = 0;
export function readFile(path: string): bool {
  const f = openAt(path, false);
  if (f < 0) return false;
  if (fd_filestat_get(<fd>f, changetype<filestat>(scratch)) != errno.SUCCESS) { fd_close(<fd>f); fileError = "cannot be examined"; return false; }
  const size = load<u64>(scratch, 32);
  if (size > 0xc0000000) { fd_close(<fd>f); fileError = "is larger than 3 GiB"; return false; }
  const buf = heap.alloc(<usize>size + 16);
  let got: usize = 0;
  while (got < <usize>size) {
    store<usize>(scratch, buf + got);
    store<usize>(scratch, <usize>size - got, sizeof<usize>());
    if (fd_read(<fd>f, scratch, 1, scratch + 16) != errno.SUCCESS) { fd_close(<fd>f); fileError = "read failed"; return false; }
    const n = load<usize>(scratch, 16);
    if (n == 0) break;
    got += n;
  }
  fd_close(<fd>f);
  readPtr = buf; readLen = got;
  return true;
}

/** A file written through a buffer. */
@final export class Output {
  fd: i32 = -1;
  buf: usize = 0;
  len: usize = 0;
  cap: usize = 0;
  failed: bool = false;

  open(path: string, cap: usize): bool {
    this.fd = openAt(path, true);
    if (this.fd < 0) return false;
    this.buf = heap.alloc(cap);
    this.cap = cap;
    return true;
  }

  /** Room for `n` more bytes at `this.buf + this.len` (flushes first when needed). */
  @inline reserve(n: usize): usize {
    if (this.len + n > this.cap) this.flush();
    return this.buf + this.len;
  }

  flush(): void {
    let at: usize = 0;
    while (at < this.len && !this.failed) {
      store<usize>(scratch, this.buf + at);
      store<usize>(scratch, this.len - at, sizeof<usize>());
      if (fd_write(<fd>this.fd, scratch, 1, scratch + 16) != errno.SUCCESS) { this.failed = true; break; }
      at += load<usize>(scratch, 16);
    }
    this.len = 0;
  }

  close(): void {
    if (this.fd < 0) return;
    this.flush();
    fd_close(<fd>this.fd);
    this.fd = -1;
  }
}
