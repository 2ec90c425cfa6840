// conntrack/table.ts — the connection table's public surface: everything the pipeline, the NAT
// code and the ABI call, gathered from the files that implement it (hash.ts storage and lookup,
// track.ts per-packet tracking, tcp.ts the TCP state machine, timeouts.ts, reap.ts expiry and
// flushes, reconcile.ts kube-proxy's UDP reconcile, export.ts accessors and snapshot records;
// ctstate values are in state.ts). Defines nothing itself.
//
// Handles: ctLookup returns `(index << 1) | dir`, dir 0 = original direction, 1 = reply; ctInsert
// returns the index. CT_NONE (0xFFFFFFFF) means none.
export {
  CT_NONE, CT_EVICTION_RANGE, CT_CAPACITY_LOG2_MAX, CT_CAPACITY6_LOG2_MAX,
  CT_STAT_INSERTS, CT_STAT_DELETES, CT_STAT_EXPIRED, CT_STAT_EARLY_DROPS, CT_STAT_INSERT_FAILED,
  CT_STAT_INVALID, CT_STAT_CLASH, CT_STAT_BAD_ARG, CT_STAT_COUNT,
  ctInit, ctLookup, ctInsert, ctDelete, ctCount, ctCapacity, ctBytes, ctStats, ctStat,
} from "./hash";
export {
  CT_SEEN_REPLY, CT_ASSURED, CT_CONFIRMED, CT_SNAT, CT_DNAT, ENTRY_SIZE, SIDE_SIZE, warmStorage,
} from "./entry";
export { ctPacket, ctPacketFound, ctInvertTuple, ctLookupRelated, icmpInverse, icmpValidNew, ctOpens } from "./track";
export {
  TCP_NONE, TCP_SYN_SENT, TCP_SYN_RECV, TCP_ESTABLISHED, TCP_FIN_WAIT, TCP_CLOSE_WAIT,
  TCP_LAST_ACK, TCP_TIME_WAIT, TCP_CLOSE, TCP_SYN_SENT2,
} from "./tcp";
export {
  CT_TO_TCP_SYN_SENT, CT_TO_TCP_SYN_RECV, CT_TO_TCP_ESTABLISHED, CT_TO_TCP_FIN_WAIT,
  CT_TO_TCP_CLOSE_WAIT, CT_TO_TCP_LAST_ACK, CT_TO_TCP_TIME_WAIT, CT_TO_TCP_CLOSE,
  CT_TO_TCP_SYN_SENT2, CT_TO_TCP_UNACK, CT_TO_UDP_UNREPLIED, CT_TO_UDP_STREAM, CT_TO_ICMP,
  CT_TO_ICMPV6, CT_TO_GENERIC, CT_TO_SCTP_UNREPLIED, CT_TO_SCTP_STREAM, CT_TO_COUNT,
  CT_TIMEOUT_MAX_MS, ctSetTimeout, ctGetTimeout, ctResetTimeouts,
} from "./timeouts";
export { ctReap, ctReapCursor, ctNextUsed, ctFlushReplySrc, ctFlushOrigDst, ctFlushMany, FLUSH_KEY, ctAdoptIpvsNat } from "./reap";
export { ctReconcileUdp, RECONCILE_REC } from "./reconcile";
export {
  CT_RECORD_SIZE, CT_RECORD_VERSION, ctOrig, ctReply, ctTcpState, ctStatus, ctExpiry, ctMark,
  ctSetMark, ctExportRecord, ctImportRecord, ctRecordValid, ctEntry, ctEntryNat, ctEntryIsV4, ctEntrySrc4, ctEntryDst4,
  ctEntrySport, ctEntryDport,
} from "./export";
