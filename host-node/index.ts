// index.ts — the package's main entry: the Dataplane and the helpers hosts need with it.
export { Dataplane, RestoreFailed, type TraceQuery, type RestoreApplied, type ApplyOptions, type ApplyResult, type ApplyFailure, type DecodedObjects } from './dataplane.js';
export { loadObjects, parseManifests, type ManifestSet, type ManifestIssue } from './kube/objects.js';
export type { DataplaneOptions, ProcessResult, PacketIn, SnapshotSteps, ConntrackEvent } from './core/dataplane.js';
export { buildPacket, decodePacket, checksumsValid, parseIP, formatIP } from './core/packet.js';
export type { ServiceSpec } from './core/svc-config.js';
export type { ConntrackEntry } from './core/conntrack-record.js';
export type { ConntrackFilter } from './core/conntrack-list.js';
export { TIMEOUTS } from './core/conntrack-record.js';
export { SnapshotError } from './core/snapshot.js';
export { SvpError } from './embed/svp.js';
export type { TraceResult, TraceOutcome, TraceStep } from './netfilter/trace.js';
export { IpsetTable, IpsetError } from './ipset/index.js';
export { Ipvsadm } from './ipvs/ipvsadm.js';
