// rand.ts — the core's only randomness: a seeded xorshift64* stream (statistic matches, endpoint
// choice) and a seeded mixer for flow hashing. The host passes the seed; the same seed and the
// same packets give the same choices on every runtime. Never reads a clock or the OS.

let state: u64 = 0x9E3779B97F4A7C15;

export function randSeed(lo: u32, hi: u32): void {
  state = ((<u64>hi << 32) | <u64>lo) ^ 0x9E3779B97F4A7C15;
  if (state == 0) state = 0x9E3779B97F4A7C15;
}

// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators").
@inline export function randNext(): u64 {
  let x = state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  state = x;
  return x * 0x2545F4914F6CDD1D;
}

// Uniform integer in [0, n) by multiply-shift (Lemire), never a modulo.
@inline export function randBelow(n: u32): u32 {
  return <u32>(((randNext() >> 32) * <u64>n) >> 32);
}

// Uniform in [0, 1) with 53 bits, for probability tests.
@inline export function randUnit(): f64 {
  return <f64>(randNext() >> 11) * (1.0 / 9007199254740992.0);
}

export function randState(): u64 { return state; }
export function randRestore(s: u64): void { state = s == 0 ? 0x9E3779B97F4A7C15 : s; }
