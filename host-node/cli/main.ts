// main.ts — the `svcplane` command line: dispatches to subcommands and turns their errors into
// messages and exit codes. Each subcommand lives in its own module.
import { runDemo } from './demo.js';
import { runTrace } from './trace.js';
import { runRender } from './render.js';
import { runDns } from './dns.js';
import { runProxy } from './proxy.js';
import { runCompile } from './compile.js';
import { runReplay } from './replay.js';

const HELP = `usage: svcplane <command> [options]

commands:
  compile     write a config (rules, manifests or ipvsadm) as a .svp file any host loads without parsing
  dns         answer cluster DNS (A/AAAA/SRV/PTR/CNAME) over UDP and TCP from manifests; forward the rest
  replay      run a pcap/pcapng capture through a .svp config (WASI); --compare B.svp: what-if per flow
  demo        run sample Services and packets through the dataplane core and show what happened
  render      print the rules kube-proxy would install for a manifests file or directory
  trace       explain what an iptables-restore ruleset does with one packet (svcplane trace --help)
  proxy       serve Services on this node through a TUN device (svcplane proxy --help)
  help        this text
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'demo':
        return await runDemo();
      case 'trace':
        return await runTrace(rest);
      case 'render':
        return await runRender(rest, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
      case 'dns':
        return await runDns(rest, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
      case 'proxy':
        return await runProxy(rest, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
      case 'compile':
        return await runCompile(rest, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
      case 'replay':
        return await runReplay(rest, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        return cmd === undefined ? 2 : 0;
      default:
        process.stderr.write(`svcplane: unknown command ${JSON.stringify(cmd)}\n${HELP}`);
        return 2;
    }
  } catch (e) {
    process.stderr.write(`svcplane ${cmd}: ${(e as Error).message}\n`);
    return 1;
  }
}
