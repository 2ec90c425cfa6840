// conntrack/testing.ts — conntrack internals exported for unit tests (build/testing-conntrack.wasm).
export { scratch, scratchBytes } from "../scratch";
