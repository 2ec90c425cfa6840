// node-proxy.ts — `svcplane proxy` as a running thing: a Dataplane fed by a Source (manifests or the
// API server), a TUN device with routes and policy rules steering Service traffic into it, the
// packet loop, kube-proxy's health and metrics servers, and the conntrack state file that lets a
// restarted proxy keep its flows (io/conntrack-state.ts: checkpoints while running, a save at
// exit). start() undoes whatever it already set up when a later step fails; stop() saves the flows,
// then removes the routes (but the service CIDRs' unreachable fallbacks), rules, device and servers.
// In userspace mode (no root, no TUN) the device, routes and packet loop are replaced by socket
// listeners per service port (io/userspace.ts) that ask the same core for every endpoint.
// Runs in the current network namespace. Never decides packets (the core does) and never renders
// rules (Dataplane.apply does).
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { Dataplane, type ApplyOptions, type ApplyResult, type ApplyFailure } from '../dataplane.js';
import type { IptablesOptions } from '../kube/render-iptables.js';
import { parseIP } from '../kube/ip.js';
import { familyName } from '../kube/model.js';
import { nodeIPs, nodePortAddresses as npaFor } from '../kube/render-settings.js';
import type { Source } from '../kube/source.js';
import { TunDevice, TunError } from './tun.js';
import { ServedDestinations } from './served.js';
import { ProxyLoop } from './proxy-loop.js';
import { NodeRoutes, hostAddresses } from './node-routes.js';
import { ProxyObjects, type HostView } from './proxy-sink.js';
import { SyncRunner } from './sync-runner.js';
import { ProxyHealth, ServiceHealthServers, nodeEligible, serveProxyHealth, closeServer } from './health.js';
import { ProxyMetrics } from './metrics.js';
import { conntrackRoute, showRoute, traceRoute } from './proxy-inspect.js';
import { ConntrackEventFeed } from './conntrack-events.js';
import { ManifestSource } from './manifests.js';
import { hostPort, coreMode, type ProxyConfig } from './proxy-config.js';
import { configz } from './proxy-configz.js';
import { applyTableSettings, conntrackTableSize } from './kernel-tables.js';
import { describeLeftovers, findKubeProxyLeftovers, intercepts } from './kube-proxy-leftovers.js';
import { ConntrackCheckpoints, readConntrackState, writeFileAtomic } from './conntrack-state.js';
import { UserspaceProxy, modelServicePorts } from './userspace.js';

export interface NodeProxyOptions {
  log?: (line: string) => void;
  /**
   * The proxy stopped serving on its own (its TUN device was deleted): `stop()` it, saving the
   * flows, so whoever runs it can start it again. Called at most once.
   */
  onFailure?: (reason: string) => void;
}

/**
 * Node addresses NodePorts answer on: per family, as that family's kube-proxy proxier takes
 * --nodeport-addresses (NewNodePortAddresses + GetNodeIPs): the family's CIDRs, or all of its
 * addresses when none is of that family; "primary" is the family's first host address.
 */
export function nodePortAddresses(filter: string[], hostAddrs: string[]): string[] {
  return FAMILIES.flatMap((family) => nodeIPs(npaFor(filter, family, primaryOf(hostAddrs, family)), hostAddrs));
}

/**
 * Where Services' health check ports listen: on every address ("0.0.0.0", which listen() takes for
 * both families) when a family the node has addresses of takes NodePorts on all of them, else on
 * the NodePort addresses (service_health.go: 0.0.0.0 unless --nodeport-addresses narrows them).
 */
export function healthCheckAddresses(filter: string[], hostAddrs: string[]): string[] {
  const all = FAMILIES.some((family) => {
    const primary = primaryOf(hostAddrs, family);
    return primary !== null && npaFor(filter, family, primary).matchAll;
  });
  return all ? ['0.0.0.0'] : nodePortAddresses(filter, hostAddrs);
}

const primaryOf = (hostAddrs: string[], family: 4 | 6) => hostAddrs.map((a) => parseIP(a)).find((ip) => ip?.family === family) ?? null;

/** The IP families the proxy serves (kube-proxy dual-stack: one proxier per family). */
const FAMILIES = [4, 6] as const;

/** kube-proxy's --iptables-sync-period default: how often a large cluster's stale chains go. */
const STALE_CHAIN_PERIOD_MS = 30_000;

export class NodeProxy {
  readonly dp: Dataplane;
  readonly objects: ProxyObjects;
  readonly health: ProxyHealth;
  readonly metrics: ProxyMetrics;
  /** Flows restored from the state file at start. */
  restoredFlows = 0;
  syncs = 0;
  lastSyncError = '';
  private tun: TunDevice | null = null;
  private served: ServedDestinations | null = null;
  private lastChainCleanup = -Infinity;
  private routes: NodeRoutes | null = null;
  private loop: ProxyLoop | null = null;
  /** Userspace mode's listeners (instead of the device, routes and loop). */
  userspace: UserspaceProxy | null = null;
  private source: Source | null = null;
  private servers: Server[] = [];
  private hcServers: ServiceHealthServers | null = null;
  /** When syncs run: at most one at a time, at least --min-sync-period apart (kube-proxy's runner). */
  private readonly runner: SyncRunner;
  private periodic: ReturnType<typeof setInterval> | null = null;
  private repairTimer: ReturnType<typeof setInterval> | null = null;
  /** Flows written to the state file every --conntrack-checkpoint-period (with --conntrack-state). */
  readonly checkpoints: ConntrackCheckpoints | null;
  /** The flow table's events for /conntrack?events listeners (conntrack -E). */
  private readonly ctEvents: ConntrackEventFeed;
  private stopped = false;
  /** NodeCIDR mode: the wait for the Node's pod CIDRs was logged; pod CIDRs the core refused. */
  private waitingForPodCIDRs = false;
  private refusedPodCIDRs = '';
  private readonly log: (l: string) => void;
  private readonly onFailure: ((reason: string) => void) | null;

  private constructor(
    readonly cfg: ProxyConfig, dp: Dataplane, readonly clock: () => number,
    readonly nodeAddrs: string[], readonly nodePortAddrs: string[], opts: NodeProxyOptions,
  ) {
    this.dp = dp;
    this.log = opts.log ?? (() => {});
    this.onFailure = opts.onFailure ?? null;
    this.runner = new SyncRunner(() => this.syncOnce(), cfg.minSyncPeriodMs);
    this.objects = new ProxyObjects(cfg.nodeName, Date.now(), cfg.detectLocalMode === 'NodeCIDR');
    this.checkpoints = cfg.conntrackState ? new ConntrackCheckpoints(dp, cfg.conntrackState, cfg.conntrackCheckpointMs, clock, this.log) : null;
    this.ctEvents = new ConntrackEventFeed(dp, clock);
    // server.go: NewProxierHealthServer(healthzBindAddress, 2*syncPeriod).
    this.health = new ProxyHealth(2 * cfg.syncPeriodMs, Date.now, () => nodeEligible(this.objects.node, this.objects.nodeDeleting));
    this.metrics = new ProxyMetrics({
      coreStats: () => this.dp.stats(),
      nfacct: () => this.dp.nfacctList(),
      ...(this.checkpoints ? { checkpoints: () => this.checkpoints! } : {}),
      tunStats: () => this.loop?.stats() ?? { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0, batches: 0, readErrors: 0, writeErrors: 0, dropped: 0, wakeups: 0 },
      health: this.health,
    });
  }

  /** Brings the proxy up; on any failure everything already set up is removed before the error propagates. */
  static async start(cfg: ProxyConfig, opts: NodeProxyOptions = {}): Promise<NodeProxy> {
    let hostAddrs = cfg.nodeIPs.length > 0 ? cfg.nodeIPs : hostAddresses(cfg.tun);
    // A userspace proxy needs no routable node address: its bind addresses stand in.
    if (hostAddrs.length === 0 && cfg.mode === 'userspace') hostAddrs = cfg.userspaceBind.filter((a) => a !== '0.0.0.0' && a !== '::');
    if (hostAddrs.length === 0) throw new Error('no node address: pass --node-ip (no global address found in this network namespace)');
    const npAddrs = nodePortAddresses(cfg.nodePortAddresses, hostAddrs);

    // The core's clock continues across restarts: the snapshot's time plus the wall time since it was written.
    const { snapshot, clockOffset } = readConntrackState(cfg.conntrackState, () => performance.now(), opts.log ?? (() => {}));
    const clock = (): number => performance.now() + clockOffset;

    const dp = await Dataplane.create({
      nodeIPs: hostAddrs, masqueradeIPs: cfg.masqueradeAddresses, serviceCIDR: cfg.serviceCIDRs,
      // NodeCIDR: the node's pod CIDRs, once its Node object has them (localTraffic()).
      ...(cfg.detectLocalMode === 'ClusterCIDR' && cfg.clusterCIDRs.length > 0 ? { podCIDR: cfg.clusterCIDRs } : {}),
      seed: randomBytes(8).readBigUInt64LE(0),
      conntrackCapacity: conntrackTableSize(cfg),
    });
    const p = new NodeProxy(cfg, dp, clock, hostAddrs, npAddrs, opts);
    try {
      for (const line of applyTableSettings(dp, cfg, coreMode(cfg) === 'ipvs')) p.log(`proxy: ${line}`);
      if (snapshot) {
        p.restoredFlows = dp.restore(snapshot);
        p.log(`proxy: restored ${p.restoredFlows} flows from ${cfg.conntrackState}`);
      }
      await p.bringUp();
      return p;
    } catch (e) {
      await p.stop({ save: false });
      throw e;
    }
  }

  private async bringUp(): Promise<void> {
    const cfg = this.cfg;
    if (cfg.mode === 'userspace') {
      this.userspace = new UserspaceProxy({
        dp: this.dp, clock: this.clock, bind: cfg.userspaceBind, ports: cfg.userspacePorts, portRange: cfg.proxyPortRange,
        udpIdleTimeoutMs: cfg.udpIdleTimeoutMs, nodeAddresses: this.nodeAddrs, log: this.log,
      });
      this.userspace.registerMetrics(this.metrics.registry);
    } else {
      // Looked for while the proxy starts and serves (a leftover ruleset can be large).
      void findKubeProxyLeftovers().then(({ found }) => {
        if (this.stopped || !intercepts(found)) return;
        this.log(`proxy: kube-proxy's rules are still in this node's kernel and take Service traffic before it reaches ${cfg.tun}: ${describeLeftovers(found)}; stop kube-proxy and run \`svcplane proxy --cleanup\``);
      }, () => {});
      this.tun = this.openTun();
      this.routes = new NodeRoutes({
        tun: cfg.tun, table: cfg.routeTable, serviceCIDRs: cfg.serviceCIDRs, masqueradeAddresses: cfg.masqueradeAddresses,
        nodePortRange: cfg.nodePortRange, nodePortAddresses: this.nodePortAddrs, clusterCIDRs: cfg.clusterCIDRs, log: this.log,
      }, this.nodeAddrs);
      this.routes.setup();
      this.served = new ServedDestinations(cfg.serviceCIDRs, [...this.nodeAddrs, ...this.nodePortAddrs, ...cfg.masqueradeAddresses]);
      this.loop = new ProxyLoop(this.dp, this.tun, {
        clock: this.clock, served: this.served, onFailure: (why) => this.onFailure?.(`${cfg.tun}: ${why}`),
      });
      this.loop.start();
    }

    if (cfg.healthzBindAddress) {
      const hp = hostPort(cfg.healthzBindAddress, '--healthz-bind-address');
      this.servers.push(await serveProxyHealth(this.health, hp.host, hp.port));
    }
    if (cfg.metricsBindAddress) {
      const mp = hostPort(cfg.metricsBindAddress, '--metrics-bind-address');
      const us = this.userspace;
      // kube-proxy's metrics server also answers /proxyMode, /healthz ("ok") and /configz; /trace,
      // /conntrack and /show are svcplane's own: a packet explained, the flows and the rules listed
      // (proxy-inspect.ts).
      const capacity = this.dp.stats().conntrack_capacity;
      this.servers.push(await this.metrics.serve(mp.host, mp.port, {
        '/proxyMode': () => cfg.mode, '/healthz': () => 'ok', '/configz': () => configz(cfg, capacity),
        '/trace': traceRoute(this.dp, cfg.mode, this.nodeAddrs, this.clock), '/conntrack': conntrackRoute(this.dp, this.clock, (n) => this.flowsDeleted(n), this.ctEvents),
        '/show': showRoute(this.dp),
        ...(us ? { '/services': () => us.mapping() } : {}),
      }));
    }
    // A userspace proxy answers where it binds (its bind addresses stand in for the node's).
    const hcAddrs = cfg.mode === 'userspace' ? this.nodePortAddrs : healthCheckAddresses(cfg.nodePortAddresses, this.nodeAddrs);
    this.hcServers = new ServiceHealthServers(this.health, hcAddrs, this.log);

    const sourceOpts = { nodeName: cfg.nodeName, log: (m: string) => this.log(m) };
    if (cfg.manifests) this.source = new ManifestSource({ ...sourceOpts, path: cfg.manifests });
    else {
      // Loaded only for an API server: importing @kubernetes/client-node takes most of a second,
      // which a proxy serving manifests would add to every start (and every restart's stall).
      const { createKubeApiSource, loadKubeConfig } = await import('./kube-api.js');
      this.source = createKubeApiSource({ ...sourceOpts, kubeConfig: loadKubeConfig(cfg.kubeconfig, cfg.master) });
    }
    // proxier.go SyncLoop(): the health timestamp and the queued-sync metric are set as the loop
    // starts, so a proxy whose first sync never succeeds turns unhealthy after the health timeout
    // instead of answering 200 for ever.
    for (const f of FAMILIES) {
      this.health.updated(f);
      this.metrics.lastQueued.setToCurrentTime({ ip_family: familyName(f) });
    }
    this.source.start(this.objects, (wantSync) => {
      if (!wantSync) return;
      for (const f of FAMILIES) this.health.queuedUpdate(f);
      for (const f of FAMILIES) this.metrics.lastQueued.setToCurrentTime({ ip_family: familyName(f) });
      this.metrics.servicePending.set(this.objects.pending.services);
      this.metrics.endpointPending.set(this.objects.pending.endpoints);
      this.scheduleSync();
    });
    // kube-proxy resyncs periodically too (syncPeriod); a refused sync is retried this way.
    this.periodic = setInterval(() => { if (this.lastSyncError) this.scheduleSync(); }, 5000);
    this.periodic.unref();
    // And every syncPeriod kube-proxy writes its rules again, putting back what others removed:
    // here that is the host's routes and policy rules (the core's rules are the proxy's alone).
    if (this.routes) {
      this.repairTimer = setInterval(() => this.repairHost(), cfg.syncPeriodMs);
      this.repairTimer.unref();
    }
    this.checkpoints?.start();
    if (this.objects.initialized) await this.sync();
  }

  /**
   * Flows deleted on request (DELETE /conntrack): said in the log, and written to the state file
   * at once, so a proxy killed before its next checkpoint does not bring them back.
   */
  private flowsDeleted(n: number): void {
    if (n === 0) return;
    this.log(`proxy: ${n} flows deleted on request (conntrack -D)`);
    void this.checkpoints?.checkpointAfter();
  }

  /** Puts back the routes and rules something else removed (NodeRoutes.repair), saying what. */
  private repairHost(): void {
    if (this.stopped || !this.routes) return;
    const { repaired, errors } = this.routes.repair();
    if (repaired.length > 0) this.log(`proxy: put back what something else removed: ${repaired.join('; ')}`);
    for (const e of errors.slice(0, 5)) this.log(`proxy: route: ${e}`);
  }

  /** The device with offloads when asked for; a kernel that refuses them gets one packet per read. */
  private openTun(): TunDevice {
    const cfg = this.cfg;
    try {
      return TunDevice.open({ name: cfg.tun, offload: cfg.tunOffload });
    } catch (e) {
      if (!cfg.tunOffload || !(e instanceof TunError) || !/^TUNSET(OFFLOAD|VNETHDRSZ) /.test(e.op)) throw e;
      this.log(`proxy: TUN offloads unavailable (${e.message}); reading one packet at a time`);
      return TunDevice.open({ name: cfg.tun });
    }
  }

  /**
   * The rules' local-traffic detector (kube-proxy's --detect-local-mode): the cluster CIDR; or, in
   * NodeCIDR mode, the pod CIDRs of this node's Node object, also handed to the core (direct mode's
   * detector). Before the Node has any, null: kube-proxy starts no proxier until then, and no sync
   * runs here (said once). A change of them later takes effect in the next sync (kube-proxy
   * restarts for it); a Node gone keeps the last ones.
   */
  private localTraffic(): Pick<IptablesOptions, 'clusterCIDR' | 'localDetector'> | null {
    const cfg = this.cfg;
    if (cfg.detectLocalMode === 'ClusterCIDR') return cfg.clusterCIDRs[0] ? { clusterCIDR: cfg.clusterCIDRs.join(',') } : {};
    const had = this.dp.options.podCIDR as string[] | undefined;
    const cidrs = this.objects.node?.spec.podCIDRs ?? [];
    if (cidrs.length > 0 && cidrs.join(',') !== had?.join(',') && cidrs.join(',') !== this.refusedPodCIDRs) {
      try {
        this.dp.setPodCIDR([...cidrs]);
        this.log(`proxy: local traffic (NodeCIDR): from Node ${cfg.nodeName}'s pod CIDRs ${cidrs.join(', ')}${had ? ` (were ${had.join(', ')})` : ''}`);
      } catch (e) {
        // Said once; the ones before (if any) stay.
        this.refusedPodCIDRs = cidrs.join(',');
        this.log(`proxy: Node ${cfg.nodeName}'s pod CIDRs ${cidrs.join(', ')} not taken: ${(e as Error).message}`);
      }
    }
    const now = this.dp.options.podCIDR as string[] | undefined;
    if (!now) {
      if (!this.waitingForPodCIDRs) this.log(`proxy: waiting for Node ${cfg.nodeName} to have spec.podCIDRs (--detect-local-mode NodeCIDR): nothing is synced before`);
      this.waitingForPodCIDRs = true;
      return null;
    }
    return { localDetector: { mode: 'cidr', cidr: now.join(',') } };
  }

  /** Asks for a sync; bursts of changes coalesce into one (--min-sync-period). */
  private scheduleSync(): void {
    this.runner.request();
  }

  /** Programs the core from the current objects, then the host side (routes, health ports), now. */
  sync(): Promise<void> {
    return this.runner.now();
  }

  private async syncOnce(): Promise<void> {
    if (this.stopped || !this.objects.initialized) return;
    const cfg = this.cfg;
    const local = this.localTraffic();
    if (local === null) return;
    const t0 = performance.now();
    const changes = this.objects.takeChanges();
    // Counted whether or not this sync succeeds: the events are taken now, and kube-proxy counts
    // each as it arrives (servicechangetracker.go, endpointschangetracker.go).
    this.metrics.serviceChanges.inc(changes.services);
    this.metrics.endpointChanges.inc(changes.endpoints);
    // kube-proxy's large-cluster mode deletes stale chains at most once per syncPeriod (30 s).
    const cleanup = t0 - this.lastChainCleanup >= STALE_CHAIN_PERIOD_MS;
    const apply: ApplyOptions = {
      mode: coreMode(cfg),
      cleanupStaleChains: cleanup,
      nodeName: cfg.nodeName,
      iptables: {
        ...local,
        masqueradeAll: cfg.masqueradeAll,
        masqueradeBit: cfg.masqueradeBit,
        conntrackTCPLiberal: cfg.conntrackTCPBeLiberal,
        nodePortAddresses: cfg.nodePortAddresses,
        hostAddresses: this.nodeAddrs,
      },
      ...(cfg.ipvsScheduler ? { ipvs: { scheduler: cfg.ipvsScheduler } } : {}),
    };
    let synced: ApplyResult['families'] = [];
    let view: HostView;
    try {
      const done = this.objects.sync(this.dp, apply);
      const r = done.result;
      view = done.view;
      if (cleanup) this.lastChainCleanup = t0;
      synced = r.families;
      for (const f of r.families) {
        const ip_family = familyName(f.family);
        this.metrics.rules.set({ ip_family, table: 'nat' }, f.natRules);
        this.metrics.rules.set({ ip_family, table: 'filter' }, f.filterRules);
        this.metrics.rulesLast.set({ ip_family, table: 'nat' }, f.natRulesWritten ?? f.natRules);
        this.metrics.rulesLast.set({ ip_family, table: 'filter' }, f.filterRules);
        // conntrack.CleanStaleEntries: every reconcile observes its time and adds what it deleted (0 too).
        this.metrics.conntrackDeleted.inc({ ip_family }, f.flushed ?? 0);
        if (f.reconcileSeconds !== undefined) this.metrics.conntrackReconcile.observe({ ip_family }, f.reconcileSeconds);
      }
      if (r.issues.length > 0) this.log(`proxy: ${r.issues.length} objects refused: ${r.issues.map((i) => `${i.object ?? ''} ${i.path}: ${i.message}`).slice(0, 3).join('; ')}`);
      this.lastSyncError = '';
    } catch (e) {
      this.lastSyncError = (e as Error).message;
      this.metrics.syncErrors.inc();
      const failed = e as ApplyFailure;
      if (failed.restoreFamily !== undefined) {
        const ip_family = familyName(failed.restoreFamily);
        this.metrics.restoreFailures.inc({ ip_family });
        if (failed.partialRestore) this.metrics.partialRestoreFailures.inc({ ip_family });
      }
      // proxier.go syncProxyRules observes its latency in a defer: failed syncs count too (the
      // full or partial histogram where the failed restore says which it was).
      const seconds = (performance.now() - t0) / 1000;
      for (const f of FAMILIES) this.observeSync(f, seconds, f === failed.restoreFamily ? !failed.partialRestore : null);
      this.log(`proxy: sync failed, previous rules stay live: ${this.lastSyncError}`);
      return;
    }
    const routeErrors = this.routes?.sync(view) ?? [];
    this.served?.setVips(view.vips.map((v) => v.ip));
    for (const e of routeErrors.slice(0, 5)) this.log(`proxy: route: ${e}`);
    await this.userspace?.sync(modelServicePorts(this.dp.kubeModels()));
    await this.hcServers?.sync(view.healthCheckPorts);
    this.hcServers?.setEndpoints(view.localEndpoints);
    const seconds = (performance.now() - t0) / 1000;
    // One sync brings both families' rules into the core: each family's figures are that sync's.
    for (const f of synced) this.observeSync(f.family, seconds, f.full);
    for (const f of FAMILIES) this.metrics.lastSync.setToCurrentTime({ ip_family: familyName(f) });
    this.metrics.servicePending.set(this.objects.pending.services);
    this.metrics.endpointPending.set(this.objects.pending.endpoints);
    for (const f of FAMILIES) {
      const ip_family = familyName(f);
      this.metrics.noLocalEndpoints.set({ ip_family, traffic_policy: 'internal' }, view.noLocalEndpoints[ip_family].internal);
      this.metrics.noLocalEndpoints.set({ ip_family, traffic_policy: 'external' }, view.noLocalEndpoints[ip_family].external);
    }
    const now = Date.now();
    for (const t of changes.triggers) this.metrics.networkProgramming.observe({ ip_family: t.family }, Math.max(0, now - t.at) / 1000);
    for (const f of FAMILIES) this.health.updated(f);
    this.syncs++;
  }

  /** One family's sync time, also in the full or partial histogram when known (`full` null: not). */
  private observeSync(family: 4 | 6, seconds: number, full: boolean | null): void {
    const ip_family = familyName(family);
    this.metrics.syncDuration.observe({ ip_family }, seconds);
    if (full !== null) (full ? this.metrics.syncFull : this.metrics.syncPartial).observe({ ip_family }, seconds);
  }

  /** The packet loop's counters. */
  tunStats(): ReturnType<ProxyLoop['stats']> | null {
    return this.loop?.stats() ?? null;
  }

  /** Routes and rules installed for Services now. */
  routeCounts(): ReturnType<NodeRoutes['counts']> | null {
    return this.routes?.counts() ?? null;
  }

  /**
   * Stops the loop, saves the flows to the state file (unless save is false), and removes the
   * routes, rules, device and servers. Returns the cleanup steps that failed. Idempotent.
   */
  async stop(opts: { save?: boolean } = {}): Promise<string[]> {
    if (this.stopped) return [];
    this.stopped = true;
    const failed: string[] = [];
    if (this.periodic) clearInterval(this.periodic);
    if (this.repairTimer) clearInterval(this.repairTimer);
    this.ctEvents.close();
    await this.runner.stop();
    this.loop?.stop();
    this.userspace?.close();
    await this.checkpoints?.stop();
    if (opts.save !== false && this.cfg.conntrackState) {
      try {
        const snap = this.dp.snapshot(Math.floor(this.clock()));
        writeFileAtomic(this.cfg.conntrackState, snap);
        this.log(`proxy: saved ${this.dp.stats().conntrack_entries} flows to ${this.cfg.conntrackState}`);
      } catch (e) {
        failed.push(`conntrack state: ${(e as Error).message}`);
      }
    }
    await this.source?.stop().catch((e: Error) => failed.push(`source: ${e.message}`));
    if (this.routes) for (const l of this.routes.remove()) failed.push(l);
    this.tun?.close();
    await this.hcServers?.close();
    await Promise.all(this.servers.map(closeServer));
    this.servers = [];
    return failed;
  }
}
