// main.ts — the `svcplane` command line: dispatches to subcommands and turns their errors into
// messages and exit codes. Each subcommand lives in its own module.
import { runDemo, DEMO_HELP } from './demo.js';
import { runTrace } from './trace.js';
import { runRender, RENDER_HELP } from './render.js';
import { runDns, DNS_HELP } from './dns.js';
import { runProxy } from './proxy.js';
import { runCompile } from './compile.js';
import { runReplay } from './replay.js';
import { runConntrack, runShow, CONNTRACK_HELP, SHOW_HELP } from './inspect.js';

const HELP = `usage: svcplane <command> [options]

commands:
  compile     write a config (rules, manifests or ipvsadm) as a .svp file any host loads without parsing
  dns         answer cluster DNS (A/AAAA/SRV/PTR/CNAME) over UDP and TCP from manifests; forward the rest
  replay      run a pcap/pcapng capture through a .svp config (WASI); --compare B.svp: what-if per flow
  demo        run sample Services and packets through the dataplane core and show what happened
  render      print the rules kube-proxy would install for a manifests file or directory
  trace       explain what a ruleset, manifests or a running proxy do with one packet (svcplane trace --help)
  proxy       serve Services on this node through a TUN device (svcplane proxy --help)
  conntrack   list, delete or watch a running proxy's flows as conntrack -L / -D / -E do the kernel's (svcplane conntrack --help)
  show        run iptables-save, iptables -L, ipvsadm -L over a running proxy's rules (svcplane show --help)
  help        this text; \`svcplane help COMMAND\` (or COMMAND --help) for a command's options
`;

// Commands whose own parsing has no --help: their usage is printed here.
const USAGE: Record<string, string> = { demo: DEMO_HELP, render: RENDER_HELP, dns: DNS_HELP, conntrack: CONNTRACK_HELP, show: SHOW_HELP };

export async function main(argv: string[]): Promise<number> {
  if ((argv[0] === 'help' || argv[0] === '--help') && argv[1] !== undefined) return main([argv[1], '--help']);
  const [cmd, ...rest] = argv;
  if (cmd !== undefined && Object.hasOwn(USAGE, cmd) && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(USAGE[cmd]!);
    return 0;
  }
  try {
    switch (cmd) {
      case 'demo':
        if (rest.length > 0) {
          process.stderr.write(`svcplane demo: unexpected ${JSON.stringify(rest[0])}\n${DEMO_HELP}`);
          return 2;
        }
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
      case 'conntrack': {
        // -E listens until interrupted: then it says how many events it showed, as conntrack does.
        const stop = new AbortController();
        const onSignal = (): void => stop.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          return await runConntrack(rest, (s) => process.stdout.write(s), (s) => process.stderr.write(s), stop.signal);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }
      case 'show':
        return await runShow(rest, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
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
    const code = (e as NodeJS.ErrnoException).code;
    // node:util parseArgs refusing the command line (an unknown option, a missing value, a word
    // no option takes) is a usage error, as each command's own checks make it.
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) {
      process.stderr.write(`svcplane ${cmd}: ${(e as Error).message}\n${cmd !== undefined && Object.hasOwn(USAGE, cmd) ? USAGE[cmd] : ''}`);
      return 2;
    }
    process.stderr.write(`svcplane ${cmd}: ${problem(e)}\n`);
    return 1;
  }
}

/**
 * An error as one line. A file the system refused reads "PATH: reason" (Node's own text is
 * "ENOENT: no such file or directory, open 'PATH'").
 */
function problem(e: unknown): string {
  const x = e as NodeJS.ErrnoException;
  if (typeof x?.code === 'string' && typeof x.path === 'string') return `${x.path}: ${/^[A-Z]+: ([^,]+)/.exec(x.message)?.[1] ?? x.code}`;
  return e instanceof Error ? e.message : String(e);
}
