// ipset/types.ts — the set types svcplane implements and their facts: the kernel revision ipset 7.x
// creates (printed as `Revision:`), the dimensions an element has, which create options a type takes,
// the core's type id (assembly/ipset/format.ts T_*), and the sizes the `Size in memory` estimate
// starts from. Data only; never parses or renders.

export type TypeName = 'hash:ip' | 'hash:ip,port' | 'hash:ip,port,ip' | 'hash:ip,port,net' | 'hash:net' | 'bitmap:port';

/** What each dimension of an element holds. */
export type Dim = 'ip' | 'port' | 'ip2' | 'net' | 'net2' | 'bport';

export interface TypeDef {
  readonly name: TypeName;
  /** assembly/ipset/format.ts T_*. */
  readonly coreId: number;
  /** The kernel revision ipset 7.17 picks on Linux 6.x. */
  readonly revision: number;
  readonly dims: readonly Dim[];
  readonly hash: boolean;
  /** Elements may carry `nomatch` (the net types). */
  readonly nomatch: boolean;
  /** sizeof(struct htype) + sizeof(struct htable) + regions for an empty set, IPv4 / IPv6 (measured
   * on Linux 6.x with ipset 7.17: `Size in memory` of a fresh set). */
  readonly emptySize: readonly [number, number];
  /** sizeof(struct mtype_elem) and its alignment, IPv4 / IPv6 (ip_set_hash_*.c). */
  readonly elemSize: readonly [number, number];
  readonly elemAlign: number;
}

export const TYPES: ReadonlyMap<TypeName, TypeDef> = new Map<TypeName, TypeDef>([
  ['hash:ip', { name: 'hash:ip', coreId: 1, revision: 6, dims: ['ip'], hash: true, nomatch: false, emptySize: [216, 224], elemSize: [4, 16], elemAlign: 4 }],
  ['hash:ip,port', { name: 'hash:ip,port', coreId: 2, revision: 7, dims: ['ip', 'port'], hash: true, nomatch: false, emptySize: [216, 232], elemSize: [8, 20], elemAlign: 4 }],
  ['hash:ip,port,ip', { name: 'hash:ip,port,ip', coreId: 3, revision: 6, dims: ['ip', 'port', 'ip2'], hash: true, nomatch: false, emptySize: [208, 232], elemSize: [12, 36], elemAlign: 4 }],
  ['hash:ip,port,net', { name: 'hash:ip,port,net', coreId: 4, revision: 8, dims: ['ip', 'port', 'net2'], hash: true, nomatch: true, emptySize: [464, 1256], elemSize: [12, 36], elemAlign: 4 }],
  ['hash:net', { name: 'hash:net', coreId: 5, revision: 7, dims: ['net'], hash: true, nomatch: true, emptySize: [456, 1240], elemSize: [8, 20], elemAlign: 4 }],
  ['bitmap:port', { name: 'bitmap:port', coreId: 6, revision: 3, dims: ['bport'], hash: false, nomatch: false, emptySize: [72, 72], elemSize: [0, 0], elemAlign: 8 }],
]);

// ip_set_hash_gen.h / ipset defaults.
export const DEFAULT_HASHSIZE = 1024;
export const MIN_HASHSIZE = 64;            // IPSET_MIMINAL_HASHSIZE
export const DEFAULT_MAXELEM = 65536;
export const DEFAULT_BUCKETSIZE = 12;      // AHASH_MAX_SIZE
export const MAX_TIMEOUT = 2147483;        // IPSET_MAX_TIMEOUT, seconds
export const MAX_SETNAME = 31;             // IPSET_MAXNAMELEN - 1

// Extension sizes (ip_set_core.c ip_set_extensions[]: counter, timeout, comment, in that order).
export const EXT_COUNTER = 16;
export const EXT_TIMEOUT = 8;
export const EXT_COMMENT = 8;
/** struct hbucket without its values (rcu_head, used bitmap, size, pos, aligned to u64). */
export const HBUCKET = 32;
/** struct ip_set_comment_rcu without its string. */
export const COMMENT_RCU = 16;

/** Core create flags (assembly/ipset/format.ts CF_*). */
export const CF_TIMEOUT = 1;
export const CF_COUNTERS = 2;
export const CF_COMMENT = 4;

export function typeDef(name: string): TypeDef | undefined {
  return TYPES.get(name as TypeName);
}
