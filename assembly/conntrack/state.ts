// conntrack/state.ts — the ctstate a packet gets from conntrack, valued as the kernel's xt_state /
// xt_conntrack matches test them (XT_STATE_BIT(ctinfo) = 1 << (ctinfo + 1); INVALID = 1;
// UNTRACKED = 1 << 4), so a rule's `--ctstate` mask tests with a single AND. Constants only.

export const CT_INVALID: u8 = 1;
export const CT_ESTABLISHED: u8 = 2;
export const CT_RELATED: u8 = 4;
export const CT_NEW: u8 = 8;
export const CT_UNTRACKED: u8 = 16;

// Not a state: ctPacket killed the entry because the packet reopens a closed TCP connection (a
// SYN in TIME_WAIT/CLOSE after a FIN or RST, the kernel's -NF_REPEAT). The caller looks the packet
// up again; the lookup misses and the packet starts a new connection (a fresh NAT decision too).
export const CT_REPEAT: u8 = 0x80;
