// wire/testing.ts — wire internals exported for unit tests (build/testing-wire.wasm).
export { scratch, scratchBytes } from "../scratch";
