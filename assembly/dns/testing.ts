// dns/testing.ts — the DNS core for unit tests (build/testing-dns.wasm): the DNS ABI (api.ts), the
// scratch buffer, and the name reader so tests can probe decompression directly.
import { readName, nameLen, nameLow } from "./name";

export { scratch, scratchBytes } from "../scratch";
export * from "./api";

// Reads the name at `off` of msg[0, len): returns its end offset or -1; dnsNameLen/dnsNamePtr give
// the decompressed lowercase name.
export function dnsReadName(msg: usize, len: u32, off: u32): i32 { return readName(msg, len, off); }
export function dnsNameLen(): u32 { return nameLen; }
export function dnsNamePtr(): usize { return nameLow; }
