// conntrack/record.ts — one connection as a fixed-size record (the layout export.ts documents):
// what a snapshot saves and what the event ring (events.ts) carries. Writes only; reading a
// record back, with its checks, is export.ts's import. Never allocates.
import { Tuple, PROTO_TCP } from "../flow";
import { E_EXPIRY, E_MARK, E_PROTO, E_STATUS, E_TCPSTATE, E_TCPFLAGS, CT_STATUS_PUBLIC, readTuple } from "./entry";

export const CT_RECORD_SIZE: u32 = 88;
export const CT_RECORD_VERSION: u8 = 1;

export const R_ORIG: usize = 16;
export const R_REPLY: usize = 52;

function putTuple(p: usize, t: Tuple): void {
  store<u32>(p, t.s0); store<u32>(p, t.s1, 4); store<u32>(p, t.s2, 8); store<u32>(p, t.s3, 12);
  store<u32>(p, t.d0, 16); store<u32>(p, t.d1, 20); store<u32>(p, t.d2, 24); store<u32>(p, t.d3, 28);
  store<u16>(p, t.sport, 32);
  store<u16>(p, t.dport, 34);
}

/**
 * Writes the connection at entry address `e` as a record at `out`, its lifetime counted from
 * `now` (0 or less once its time is up); `orig` and `reply` are the caller's scratch tuples, so
 * a writer inside another's work (an event while a record is imported) never shares them.
 */
export function writeRecord(e: usize, out: usize, now: u32, orig: Tuple, reply: Tuple): void {
  const proto = load<u8>(e + E_PROTO);
  const tcp = proto == PROTO_TCP;
  readTuple(e, 0, orig);
  readTuple(e, 1, reply);
  store<u8>(out, CT_RECORD_VERSION);
  store<u8>(out, orig.family, 1);
  store<u8>(out, proto, 2);
  store<u8>(out, tcp ? load<u8>(e + E_TCPSTATE) : 0, 3);
  store<u8>(out, orig.icmpType, 4);
  store<u8>(out, reply.icmpType, 5);
  store<u8>(out, load<u8>(e + E_STATUS) & CT_STATUS_PUBLIC, 6);
  store<u8>(out, tcp ? load<u8>(e + E_TCPFLAGS) : 0, 7);
  store<u32>(out, load<u32>(e + E_MARK), 8);
  store<i32>(out, <i32>(load<u32>(e + E_EXPIRY) - now), 12);
  putTuple(out + R_ORIG, orig);
  putTuple(out + R_REPLY, reply);
}
