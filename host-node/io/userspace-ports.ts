// userspace-ports.ts — which local port a userspace-mode listener gets. kube-proxy's userspace
// proxier opened one "proxy port" per service port (pkg/proxy/userspace/port_allocator.go: a
// random port of --proxy-port-range, then a sequential scan from there, wrapping; any free port
// when no range is set) and made iptables redirect the cluster IP to it. Without root there are no
// redirects, so the port is where users connect: in "service" choice the Service's own port is
// tried first (free and allowed for this user), then the range. Ports are tracked per bind address
// and protocol (TCP and UDP ports are separate). Never opens a socket itself: binding is the
// caller's `bind` attempt, and a port it fails on is skipped.
import type { UserspacePorts } from './proxy-config.js';

/** Binds attempted per listener before giving up (a scan never walks a whole large range). */
export const MAX_BIND_ATTEMPTS = 64;

export interface PortChoice<T> {
  /** The port bound (the kernel's choice when the range is unset and 0 was asked for). */
  port: number;
  handle: T;
}

/** Why every candidate failed, e.g. "8080: EADDRINUSE; 31000: EACCES". */
export class NoPortError extends Error {}

export class PortAllocator {
  /** "bind|protocol" → ports this proxy holds there. */
  private readonly used = new Map<string, Set<number>>();

  constructor(
    private readonly range: [number, number],
    private readonly choice: UserspacePorts,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * The ports to try for a listener of `servicePort` on `bind`/`protocol`, best first: the
   * service port (in "service" choice), then range ports from a random start, skipping ports held.
   * An unset range ([0, 0]) ends with 0: any free port.
   */
  *candidates(bind: string, protocol: string, servicePort: number): Generator<number> {
    const held = this.used.get(`${bind}|${protocol}`);
    const free = (p: number): boolean => !held?.has(p);
    if (this.choice === 'service' && free(servicePort)) yield servicePort;
    const [lo, hi] = this.range;
    if (lo === 0) {
      yield 0;
      return;
    }
    const size = hi - lo + 1;
    const start = Math.floor(this.random() * size);
    for (let i = 0; i < size; i++) {
      const p = lo + ((start + i) % size);
      if (p !== servicePort || this.choice === 'range') if (free(p)) yield p;
    }
  }

  /**
   * Tries candidates until `bind` succeeds (at most MAX_BIND_ATTEMPTS), marks the port held and
   * returns it; throws NoPortError naming each failure.
   */
  async allocate<T>(bind: string, protocol: string, servicePort: number, attempt: (port: number) => Promise<{ port: number; handle: T }>): Promise<PortChoice<T>> {
    const errors: string[] = [];
    for (const p of this.candidates(bind, protocol, servicePort)) {
      if (errors.length >= MAX_BIND_ATTEMPTS) break;
      try {
        const r = await attempt(p);
        this.hold(bind, protocol, r.port);
        return r;
      } catch (e) {
        errors.push(`${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    const shown = errors.length > 4 ? [...errors.slice(0, 4), `… ${errors.length - 4} more`] : errors;
    throw new NoPortError(errors.length === 0 ? 'every port of the range is held' : `no port could be bound (${shown.join('; ')})`);
  }

  /** Gives a port back (its listener closed). */
  release(bind: string, protocol: string, port: number): void {
    this.used.get(`${bind}|${protocol}`)?.delete(port);
  }

  /** Ports held on one bind address and protocol. */
  held(bind: string, protocol: string): number[] {
    return [...(this.used.get(`${bind}|${protocol}`) ?? [])].sort((a, b) => a - b);
  }

  private hold(bind: string, protocol: string, port: number): void {
    const k = `${bind}|${protocol}`;
    let s = this.used.get(k);
    if (!s) this.used.set(k, (s = new Set()));
    s.add(port);
  }
}
