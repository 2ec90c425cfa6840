// verdict.ts — what the core decides per packet, and why. Every drop has a reason; every reason
// has a counter (see stats.ts). The host mirrors these codes in host-node/core/abi.ts; a test
// checks both lists agree via the exported counts.

export const VERDICT_PASS: u8 = 0;    // not ours or no change: hand the packet on unchanged
export const VERDICT_FORWARD: u8 = 1; // rewritten (NAT); send it on
export const VERDICT_DROP: u8 = 2;    // discarded; `reason` says why
export const VERDICT_REPLY: u8 = 3;   // the slot now holds a generated packet for the sender (REJECT, ICMP)
export const VERDICT_COUNT: u32 = 4;

// Reasons. 0 means none. Keep in step with REASONS in host-node/core/abi.ts.
export const R_NONE: u16 = 0;
export const R_TRUNCATED: u16 = 1;        // shorter than its headers claim
export const R_BAD_VERSION: u16 = 2;      // IP version neither 4 nor 6
export const R_BAD_HEADER: u16 = 3;       // header field out of range (IHL < 5, total length < header, …)
export const R_FRAGMENT: u16 = 4;         // non-first fragment with no flow to follow
export const R_EXT_LIMIT: u16 = 5;        // IPv6 extension-header chain too long or malformed
export const R_CT_FULL: u16 = 6;          // conntrack full and nothing could be early-dropped
export const R_CT_INVALID: u16 = 7;       // conntrack state machine judged the packet invalid
export const R_NO_ENDPOINTS: u16 = 8;     // service without endpoints (rejected)
export const R_POLICY: u16 = 9;           // dropped by a rule
export const R_NAT_PORTS: u16 = 10;       // no free source port for masquerade
export const R_TOO_BIG: u16 = 11;         // rewrite or reply would not fit the slot
export const R_BAD_SLOT: u16 = 12;        // batch descriptor out of the I/O arena
export const R_TTL: u16 = 13;             // TTL/hop limit exhausted
export const R_NO_SERVICE: u16 = 14;      // to the service CIDR, but no Service there (unallocated VIP)
export const R_DNS_UPSTREAM: u16 = 15;    // cluster DNS query outside the zone: the host forwards it upstream (dns/serve.ts)
export const REASON_COUNT: u32 = 16;
