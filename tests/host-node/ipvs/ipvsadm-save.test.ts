// ipvsadm -S / -R: save lines in ipvsadm 1.31's rule format (print_service_entry with FMT_RULE),
// and a 1,000-service configuration that round-trips through -R unchanged.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { Ipvsadm } from '../../../host-node/ipvs/ipvsadm.js';

async function fresh(): Promise<Dataplane> {
  return Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 11 });
}

/** A varied configuration: every protocol, both families, fwmarks, schedulers, flags, forwarding. */
function config(n: number): string {
  const scheds = ['rr', 'wrr', 'lc', 'wlc', 'sed', 'nq', 'fo', 'ovf', 'lblc', 'lblcr', 'dh', 'sh', 'mh'];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const sched = scheds[i % scheds.length]!;
    const kind = i % 10;
    const v4 = `10.96.${i >> 8}.${i & 255}`, v6 = `fd00:96::${(i + 1).toString(16)}`;
    let svc: string, fam: 4 | 6 = 4, proto = 'tcp';
    if (kind < 5) svc = `-t ${v4}:${1 + (i % 60000)}`;
    else if (kind < 7) { svc = `-u ${v4}:53`; proto = 'udp'; }
    else if (kind === 7) { svc = `--sctp-service ${v4}:3868`; proto = 'sctp'; }
    else if (kind === 8) { svc = `-t [${v6}]:443`; fam = 6; }
    else svc = i % 20 === 9 ? `-f ${i} -6` : `-f ${i}`, fam = i % 20 === 9 ? 6 : 4;
    let opts = `-s ${sched}`;
    if (i % 3 === 0) opts += ` -p ${60 + i}`;
    if (i % 3 === 0 && i % 2 === 0) opts += fam === 6 ? ' -M 64' : ' -M 255.255.255.0';
    if (proto === 'udp' && i % 4 === 1) opts += ' -o';
    if (sched === 'sh' && i % 2) opts += ' -b sh-fallback,sh-port';
    else if (sched === 'mh' && i % 2) opts += ' -b mh-port';
    else if (sched === 'rr' && i % 5 === 0) opts += ' -b flag-2';
    lines.push(`-A ${svc} ${opts}`);
    const port = svc.startsWith('-f') ? 0 : Number(svc.slice(svc.lastIndexOf(':') + 1));
    for (let d = 0; d < 1 + (i % 3); d++) {
      const addr = fam === 6 ? `[fd00:244::${(i * 4 + d + 1).toString(16)}]` : `10.244.${i >> 6}.${((i & 63) << 2) + d}`;
      const fwd = (i + d) % 3;
      if (fwd === 0) lines.push(`-a ${svc} -r ${addr}:${8000 + d} -m -w ${(i + d) % 7}`);
      else if (fwd === 1) lines.push(`-a ${svc} -r ${addr}:${port} -g -w ${1 + d}`);
      else if (fam === 4) lines.push(`-a ${svc} -r ${addr}:${port} -i -w ${d} --tun-type ipip`);
      else lines.push(`-a ${svc} -r ${addr}:${port} -g -w 1`);
    }
  }
  return lines.join('\n') + '\n';
}

describe('ipvsadm -S', () => {
  it('writes ipvsadm rule lines', async () => {
    const dp = await fresh();
    for (const l of ['-A -t 10.96.0.1:443 -s rr', '-a -t 10.96.0.1:443 -r 10.244.1.5:6443 -m -w 1',
      '-A -u 10.96.0.10:53 -s wrr -p -M 255.255.0.0 -o', '-a -u 10.96.0.10:53 -r 10.244.1.3:53 -g -w 0',
      '-A -f 5 -6 -s sh -b sh-port', '-a -f 5 -6 -r fd00::1 -g', '-A -t 198.18.0.1:80 -s mh -b mh-fallback',
      '-a -t 198.18.0.1:80 -r 198.18.1.1 -i -w 4']) {
      expect(dp.ipvsadm(l).code, l).toBe(0);
    }
    expect(dp.ipvsadm('-S -n')).toEqual({ code: 0, stderr: '', stdout:
      '-A -t 198.18.0.1:80 -s mh -b mh-fallback\n' +
      '-a -t 198.18.0.1:80 -r 198.18.1.1:80 -i -w 4 --tun-type ipip\n' +
      '-A -t 10.96.0.1:443 -s rr\n' +
      '-a -t 10.96.0.1:443 -r 10.244.1.5:6443 -m -w 1\n' +
      '-A -u 10.96.0.10:53 -s wrr -p 360 -M 255.255.0.0 -o\n' +
      '-a -u 10.96.0.10:53 -r 10.244.1.3:53 -g -w 0\n' +
      '-A -f 5 -6 -s sh -b sh-port\n' +
      '-a -f 5 -6 -r [fd00::1]:0 -g -w 1\n' });
    // -S without -n prints the same: names are never resolved.
    expect(dp.ipvsadm('-S').stdout).toBe(dp.ipvsadm('-S -n').stdout);
    // -C clears everything.
    expect(dp.ipvsadm('-C').code).toBe(0);
    expect(dp.ipvsadm('-S').stdout).toBe('');
  });

  it('round-trips a 1,000-service configuration through -R unchanged', async () => {
    const text = config(1000);
    const a = await fresh();
    expect(a.ipvsadm('-R', text)).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(a.ipvs().services().length).toBe(1000);
    const saved = a.ipvsadm('-S -n').stdout;
    // The same lines (-S prints them sorted, so compare as multisets) ...
    expect(saved.split('\n').sort()).toEqual(text.split('\n').sort());
    // ... and saving what -R read back gives the same text byte for byte.
    const b = await fresh();
    expect(new Ipvsadm(b.ipvs()).restore(saved).code).toBe(0);
    expect(b.ipvsadm('-S -n').stdout).toBe(saved);
  });

  it('restores as ipvsadm does: "ipvsadm" words dropped, refusals reported and skipped, fail() stops', async () => {
    const dp = await fresh();
    const r = dp.ipvsadm('-R', 'ipvsadm -A -t 198.18.0.1:80 -s rr\n\n# a comment\n-A -t 198.18.0.1:80 -s rr\n' +
      '-a -t 198.18.0.1:80 -r 198.18.1.1:80 -m\n-a -t 198.18.0.1:80 -r 198.18.1.1 -w x\n-A -t 198.18.0.2:80\n');
    expect(r).toEqual({ code: 2, stdout: '', stderr: 'Service already exists\nillegal weight specified\n' });
    expect(dp.ipvsadm('-S').stdout).toBe('-A -t 198.18.0.1:80 -s rr\n-a -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 1\n');
    // The last line's result is the exit status; -R inside -R is refused.
    expect(dp.ipvsadm('-R', '-D -t 198.18.0.9:80\n').code).toBe(255);
    expect(dp.ipvsadm('-R', '-R\n').code).toBe(255);
  });
});
