// Test harness for the ipset front end: an IpsetTable over a fresh ipset test core
// (build/testing-ipset.wasm) with a fake clock, and the real tool's goldens.
import { readFileSync } from 'node:fs';
import { loadTestingCore, type TestingCore } from '../../support/testing-core';
import { IpsetTable, type IpsetTableOptions } from '../../../host-node/ipset/table';
import type { IpsetCore } from '../../../host-node/ipset/core';

export interface Clock { now: number }

export function makeTable(opts: IpsetTableOptions = {}): { table: IpsetTable; core: TestingCore; clock: Clock; ipset: IpsetCore } {
  const core = loadTestingCore('ipset');
  const clock: Clock = { now: 1_000_000 };
  const ipset = { ...(core.x as unknown as IpsetCore), memory: core.memory };
  const table = new IpsetTable(ipset, { now: () => clock.now, ...opts });
  return { table, core, clock, ipset };
}

export interface Goldens {
  version: string;
  scenarios: Record<string, { input: string; list: string; save: string; terse: string }>;
  commands: { args: string[]; stdout: string; stderr: string; status: number }[];
  restores: Record<string, { input: string; stderr: string; status: number }>;
}

export const goldens: Goldens = JSON.parse(readFileSync(new URL('./fixtures/goldens.json', import.meta.url), 'utf8'));
