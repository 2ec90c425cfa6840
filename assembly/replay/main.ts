// main.ts — svcplane-replay.wasm, a WASI command: loads a compiled config (.svp) into the core linked
// into this module, runs every packet of a pcap/pcapng capture through it on the capture's own
// timestamps (packets of the same millisecond share one batch, up to 1024), and writes the packets
// that leave (FORWARD, PASS, REPLY) as a raw-IP pcap plus one JSON line per captured packet: verdict,
// drop reason, conntrack state, the tuple in and out, and the service, IPVS destination or mark the
// core reports. Prints a JSON summary on stdout. Never reads a clock: the capture is the clock.
//
//   svcplane-replay.wasm --config A.svp [-o out.pcap] [--json out.jsonl] [--summary FILE] [--quiet] CAPTURE
//   (the summary goes to FILE instead of stdout: some runtimes' WASI cannot redirect stdout)
//   exit 0 done, 1 a file could not be read / written or was refused, 2 usage
import { readFile, readPtr, readLen, fileError, openRead, Output } from "./files";
import { svpCheck, svpApply, svpError, svpFailedOp, svpGot, svpWant } from "./svp";
import { capOpen, capNext, capIpOffset, capError, capData, capLen, capSec, capUsec, capMs } from "./capture";
import { ascii, byte, uint, digits, verdictName, reasonName, ctStateName, tcpStateName, ipvsMethodName, tuple } from "./json";
import {
  ioDescPtr, ioDataPtr, ioDataBytes, ioMaxBatch, processBatch, conntrackExport, iptModeGet, ipvsIsReady,
  ipvsResultPtr,
} from "../index";
import { Flow } from "../flow";
import { parse } from "../wire/parse";
import { DESC_BYTES, D_OFF, D_LEN, D_CAP, D_META, D_VERDICT, D_CTSTATE, D_REASON, D_MARK, D_CT, D_AUX, META_CSUM_VALID } from "../io";
import { VERDICT_DROP, VERDICT_COUNT, R_NONE } from "../verdict";

const USAGE = "usage: svcplane-replay.wasm --config A.svp [-o out.pcap] [--json out.jsonl] [--summary FILE] [--quiet] CAPTURE\n";
const LINKTYPE_RAW: u32 = 101;
/** Room each slot leaves for a reply (host-node/core/dataplane.ts REPLY_ROOM: the same caps, the same answers). */
const REPLY_ROOM: u32 = 1280 + 64;
const SLOT_META = 16; // per slot: u64 seconds, u32 microseconds, u32 capture index
const CT_NONE: u32 = 0xffffffff;
const IPVS_RESULT_BYTES: usize = 32;

let pcapOut: Output | null = null;
let jsonOut: Output | null = null;
let slotMeta: usize = 0;
let inTuples: usize = 0;      // per slot, the input packet parsed before the core rewrote it
const flow = changetype<Flow>(heap.alloc(offsetof<Flow>()));
const ctRecord: usize = heap.alloc(128);
let frames: u64 = 0;
let skipped: u64 = 0;
let packets: u64 = 0;
let perVerdict = new StaticArray<u64>(8);

let summaryPath = "";
let quiet = false;

// JSON string contents: the messages here are ASCII; quotes and backslashes escaped, controls dropped.
function jsonText(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34 || c == 92) out += "\\" + String.fromCharCode(c);
    else if (c >= 32 && c < 127) out += String.fromCharCode(c);
  }
  return out;
}

// The message goes to stderr (unless --quiet) and, with --summary, into that file as {"error": …}:
// some runtimes' WASI cannot hand the module's stderr back to the host.
function fail(code: i32, what: string, why: string): void {
  const msg = what + ": " + why;
  if (!quiet) process.stderr.write("svcplane-replay: " + msg + "\n");
  if (summaryPath.length > 0) {
    const o = new Output();
    if (o.open(summaryPath, 4096)) { ascii(o, "{\"error\":\"" + jsonText(msg) + "\",\"exit\":" + code.toString() + "}\n"); o.close(); }
  }
  process.exit(code);
}

function writePcapHeader(o: Output): void {
  const p = o.reserve(24);
  store<u32>(p, 0xa1b2c3d4); store<u16>(p, 2, 4); store<u16>(p, 4, 6);
  store<u32>(p, 0, 8); store<u32>(p, 0, 12); store<u32>(p, 262144, 16); store<u32>(p, LINKTYPE_RAW, 20);
  o.len += 24;
}

function writeFrame(o: Output, sec: u64, usec: u32, pkt: usize, len: u32): void {
  const p = o.reserve(16 + <usize>len);
  store<u32>(p, <u32>sec); store<u32>(p, usec, 4); store<u32>(p, len, 8); store<u32>(p, len, 12);
  memory.copy(p + 16, pkt, len);
  o.len += 16 + <usize>len;
}

function jsonTime(o: Output, sec: u64, usec: u32): void {
  ascii(o, ",\"t\":");
  uint(o, sec * 1000 + <u64>(usec / 1000));
  byte(o, 46);
  digits(o, usec % 1000, 3);
}

function jsonLine(o: Output, k: u32, d: usize, pkt: usize, nowMs: f64, frame: u64): void {
  const m = slotMeta + <usize>k * SLOT_META;
  const verdict = <u32>load<u8>(d, D_VERDICT);
  ascii(o, "{\"i\":");
  uint(o, load<u32>(m, 12));
  jsonTime(o, load<u64>(m), load<u32>(m, 8));
  const inFlow = changetype<Flow>(inTuples + <usize>k * offsetof<Flow>());
  if (inFlow.family != 0) { ascii(o, ",\"in\":"); tuple(o, inFlow); }
  ascii(o, ",\"verdict\":");
  verdictName(o, verdict);
  const reason = <u32>load<u16>(d, D_REASON);
  if (reason != R_NONE) { ascii(o, ",\"reason\":"); reasonName(o, reason); }
  const st = <u32>load<u8>(d, D_CTSTATE);
  if (st != 0) { ascii(o, ",\"ct\":"); ctStateName(o, st); }
  const ct = load<u32>(d, D_CT);
  if (ct != CT_NONE && inFlow.proto == 6 && conntrackExport(ct, ctRecord, nowMs) != 0) {
    ascii(o, ",\"tcp\":"); tcpStateName(o, load<u8>(ctRecord, 3));
  }
  if (verdict != VERDICT_DROP) {
    const len = load<u32>(d, D_LEN);
    if (parse(flow, pkt, len, len) == R_NONE) { ascii(o, ",\"out\":"); tuple(o, flow); }
    ascii(o, ",\"frame\":");
    uint(o, frame);
  }
  if (iptModeGet() != 0) {
    const mark = load<u32>(d, D_MARK);
    if (mark != 0) { ascii(o, ",\"mark\":"); uint(o, mark); }
  } else if (ipvsIsReady() && load<u8>(ipvsResultPtr() + <usize>k * IPVS_RESULT_BYTES) != 0xff) {
    const r = ipvsResultPtr() + <usize>k * IPVS_RESULT_BYTES;
    ascii(o, ",\"ipvs\":{\"service\":"); uint(o, load<u32>(r, 12));
    ascii(o, ",\"dest\":"); uint(o, load<u32>(r, 8));
    ascii(o, ",\"conn\":"); uint(o, load<u32>(r, 4));
    ascii(o, ",\"method\":"); ipvsMethodName(o, load<u8>(r));
    ascii(o, ",\"new\":"); ascii(o, (load<u8>(r, 2) & 1) != 0 ? "true" : "false");
    byte(o, 125);
  } else {
    const aux = load<u32>(d, D_AUX);
    if (aux != CT_NONE) { ascii(o, ",\"service\":"); uint(o, aux); }
  }
  ascii(o, "}\n");
}

function runBatch(n: u32, nowMs: f64): void {
  if (n == 0) return;
  const desc = ioDescPtr(), data = ioDataPtr();
  if (ipvsIsReady()) for (let k: u32 = 0; k < n; k++) store<u8>(ipvsResultPtr() + <usize>k * IPVS_RESULT_BYTES, 0xff);
  processBatch(n, nowMs);
  for (let k: u32 = 0; k < n; k++) {
    const d = desc + <usize>k * DESC_BYTES;
    const verdict = <u32>load<u8>(d, D_VERDICT);
    packets++;
    if (verdict < <u32>VERDICT_COUNT) unchecked(perVerdict[verdict]++);
    const pkt = data + <usize>load<u32>(d, D_OFF);
    let frame: u64 = 0;
    const m = slotMeta + <usize>k * SLOT_META;
    if (verdict != VERDICT_DROP) {
      frame = ++frames;
      const o = pcapOut;
      if (o) writeFrame(o, load<u64>(m), load<u32>(m, 8), pkt, load<u32>(d, D_LEN));
    }
    const j = jsonOut;
    if (j) jsonLine(j, k, d, pkt, nowMs, frame);
  }
}

function skipLine(index: u32): void {
  skipped++;
  const j = jsonOut;
  if (!j) return;
  ascii(j, "{\"i\":");
  uint(j, index);
  jsonTime(j, capSec, capUsec);
  ascii(j, ",\"verdict\":\"SKIP\",\"reason\":\"not_ip\"}\n");
}

function replay(): void {
  const desc = ioDescPtr(), data = ioDataPtr(), dataBytes = ioDataBytes(), maxBatch = ioMaxBatch();
  slotMeta = heap.alloc(<usize>maxBatch * SLOT_META);
  inTuples = heap.alloc(<usize>maxBatch * offsetof<Flow>());
  let n: u32 = 0, off: u32 = 0, index: u32 = 0;
  let batchMs: i64 = 0, batchNow: f64 = 0;
  while (capNext()) {
    const ip = capIpOffset();
    const ms = <i64>Math.floor(capMs);
    if (n > 0 && (ip < 0 || ms != batchMs || n == maxBatch)) { runBatch(n, batchNow); n = 0; off = 0; }
    if (ip < 0) { skipLine(index++); continue; }
    const len = capLen - <u32>ip;
    const cap = len > REPLY_ROOM ? len : REPLY_ROOM;
    if (<u64>off + cap > <u64>dataBytes) { runBatch(n, batchNow); n = 0; off = 0; }
    if (n == 0) { batchMs = ms; batchNow = capMs; }
    if (cap > dataBytes) { skipLine(index++); continue; }
    memory.copy(data + off, capData + <usize>ip, len);
    const d = desc + <usize>n * DESC_BYTES;
    // A capture cannot tell a checksum its host's NIC was still to finish (pod traffic captured on
    // a node shows partial ones) from a corrupted one: replay takes them as verified.
    store<u32>(d, off, D_OFF); store<u32>(d, len, D_LEN); store<u32>(d, cap, D_CAP); store<u32>(d, META_CSUM_VALID, D_META);
    const m = slotMeta + <usize>n * SLOT_META;
    store<u64>(m, capSec); store<u32>(m, capUsec, 8); store<u32>(m, index++, 12);
    if (jsonOut) {
      const f = changetype<Flow>(inTuples + <usize>n * offsetof<Flow>());
      if (parse(f, data + off, len, cap) != R_NONE) f.family = 0;
    }
    off += (cap + 7) & ~7;
    n++;
  }
  runBatch(n, batchNow);
}

function summary(): string {
  let s = "{\"packets\":" + packets.toString() + ",\"skipped\":" + skipped.toString() + ",\"frames\":" + frames.toString();
  s += ",\"pass\":" + unchecked(perVerdict[0]).toString() + ",\"forward\":" + unchecked(perVerdict[1]).toString();
  s += ",\"drop\":" + unchecked(perVerdict[2]).toString() + ",\"reply\":" + unchecked(perVerdict[3]).toString() + "}";
  return s;
}

function main(): void {
  const argv = process.argv;
  let config = "", capture = "", pcapPath = "", jsonPath = "";
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a == "--quiet") { quiet = true; continue; }
    if ((a == "--config" || a == "-o" || a == "--json" || a == "--summary") && i + 1 < argv.length) {
      const v = argv[++i];
      if (a == "--config") config = v; else if (a == "-o") pcapPath = v; else if (a == "--json") jsonPath = v; else summaryPath = v;
    } else if (a.startsWith("-") || capture.length > 0) {
      fail(2, "usage", "unexpected argument " + a + "\n" + USAGE);
      return;
    } else {
      capture = a;
    }
  }
  if (config.length == 0 || capture.length == 0) { fail(2, "usage", "--config and a capture are required\n" + USAGE); return; }

  if (!readFile(config)) { fail(1, config, fileError); return; }
  if (!svpCheck(readPtr, readLen)) { fail(1, config, "config.svp rejected: " + svpError); return; }
  if (!svpApply(readPtr)) {
    fail(1, config, "config.svp rejected: op #" + svpFailedOp.toString() + ": " + svpError +
      " (" + svpGot.toString() + ", recorded " + svpWant.toString() + ")");
    return;
  }
  heap.free(readPtr);
  const captureFd = openRead(capture);
  if (captureFd < 0) { fail(1, capture, fileError); return; }
  if (!capOpen(captureFd)) { fail(1, capture, capError); return; }
  if (pcapPath.length > 0) {
    const o = new Output();
    if (!o.open(pcapPath, 4 << 20)) { fail(1, pcapPath, "cannot be created"); return; }
    writePcapHeader(o);
    pcapOut = o;
  }
  if (jsonPath.length > 0) {
    const o = new Output();
    if (!o.open(jsonPath, 4 << 20)) { fail(1, jsonPath, "cannot be created"); return; }
    jsonOut = o;
  }
  replay();
  let bad = false;
  const po = pcapOut, jo = jsonOut;
  if (po) { po.close(); bad = bad || po.failed; }
  if (jo) { jo.close(); bad = bad || jo.failed; }
  if (bad) { fail(1, "output", "write failed"); return; }
  if (capError.length > 0) { fail(1, capture, "capture damaged after " + packets.toString() + " packets: " + capError); return; }
  if (summaryPath.length == 0) { process.stdout.write(summary() + "\n"); return; }
  const o = new Output();
  if (!o.open(summaryPath, 4096)) { fail(1, summaryPath, "cannot be created"); return; }
  ascii(o, summary() + "\n");
  o.close();
}

main();
