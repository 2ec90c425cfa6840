#!/usr/bin/env node
// The svcplane command: builds the core on first use from a source checkout, then runs the CLI.
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'dist/host-node/cli/main.js'))) {
  execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: ['ignore', 'inherit', 'inherit'] });
}
// A reader that stops early (`svcplane render … | head`) closes the pipe: the rest of the output
// is dropped and the command ends as it would have, instead of dying on the write error (and a
// proxy never stops serving because whoever read its log went away).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e;
  });
}
const { main } = await import('../dist/host-node/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
