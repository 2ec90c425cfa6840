// netfilter/match.ts — evaluates a rule's matches in order and stops at the first that fails, as
// ipt_do_table() does (so a stateful match after a failing one is not touched). One switch over
// the op kind; the meaning of each op lives in match-addr.ts, match-ct.ts, match-stat.ts,
// and recent.ts. The ops were validated at stage time, so arguments are read unchecked.
// Never allocates.
import { Flow } from "../flow";
import {
  opKind, opWords,
  M_SRC, M_DST, M_PROTO, M_SPORT, M_DPORT, M_IIF, M_OIF, M_ADDRTYPE, M_CTSTATE, M_CT_ADDR, M_CT_PORT,
  M_CT_STATUS, M_CT_PROTO, M_CT_DIR, M_MARK, M_CONNMARK, M_RANDOM, M_NTH, M_LIMIT, M_RECENT,
  M_MULTIPORT, M_SET, M_NFACCT, M_ICMP, M_TCPFLAGS, M_FRAG, M_IPVS, M_PHYSDEV,
} from "./format";
import { ipvsMatch, physdevMatch } from "./match-ipvs";
import { Chain, ruleAt, opAt } from "./chain";
import { pk } from "./ctx";
import { traceMode } from "./counters";
import {
  prefixMatch, protoMatch, portMatch, multiportMatch, fragMatch, icmpMatch, tcpFlagsMatch, addrtypeMatch,
} from "./match-addr";
import { ctstateMatch, ctAddrMatch, ctPortMatch, ctStatusMatch, ctProtoMatch, ctDirMatch, connmarkMatch } from "./match-ct";
import { markMatch, randomMatch, nthMatch, limitMatch, nfacctMatch, setMatch } from "./match-stat";
import { ifMatch } from "./match-addr";
import { recentMatch } from "./recent";

function opMatches(c: Chain, p: usize, kind: u32, f: Flow): bool {
  switch (kind) {
    case M_SRC: return prefixMatch(p, f, false);
    case M_DST: return prefixMatch(p, f, true);
    case M_PROTO: return protoMatch(p, f);
    case M_SPORT: return portMatch(p, f, false);
    case M_DPORT: return portMatch(p, f, true);
    case M_IIF: return ifMatch(p, false);
    case M_OIF: return ifMatch(p, true);
    case M_ADDRTYPE: return addrtypeMatch(p, f);
    case M_CTSTATE: return ctstateMatch(p);
    case M_CT_ADDR: return ctAddrMatch(p);
    case M_CT_PORT: return ctPortMatch(p);
    case M_CT_STATUS: return ctStatusMatch(p);
    case M_CT_PROTO: return ctProtoMatch(p, f);
    case M_CT_DIR: return ctDirMatch(p);
    case M_MARK: return markMatch(p);
    case M_CONNMARK: return connmarkMatch(p);
    case M_RANDOM: return randomMatch(p);
    case M_NTH: return nthMatch(c, p);
    case M_LIMIT: return limitMatch(c, p, pk.now);
    case M_RECENT: return recentMatch(p, f, pk.now, traceMode);
    case M_MULTIPORT: return multiportMatch(p, f);
    case M_SET: return setMatch(p, f);
    case M_NFACCT: return nfacctMatch(p, f);
    case M_ICMP: return icmpMatch(p, f);
    case M_TCPFLAGS: return tcpFlagsMatch(p, f);
    case M_FRAG: return fragMatch(p, f);
    case M_IPVS: return ipvsMatch(p, f);
    case M_PHYSDEV: return physdevMatch(p);
  }
  return false;
}

// Do all of rule `r`'s matches hold for `f`? (A rule without matches always does.)
export function ruleMatches(c: Chain, r: u32, f: Flow): bool {
  const rec = ruleAt(c, r);
  let at = load<u32>(rec);
  const to = load<u32>(rec, 4);
  while (at < to) {
    const p = opAt(c, at);
    const h = load<u32>(p);
    if (!opMatches(c, p, opKind(h), f)) return false;
    at += opWords(h);
  }
  return true;
}
