// ipvsadm's messages and exit codes for typical mistakes (ipvsadm.c fail() → 2, popt errors and
// kernel refusals → 255 with libipvs ipvs_strerror(), -L of a missing service → 1), plus
// --set / --timeout, -Z, -E, -e, -d and -D.
import { describe, it, expect, beforeEach } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';

let dp: Dataplane;
beforeEach(async () => {
  dp = await Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 3 });
  for (const l of ['-A -t 198.18.0.1:80 -s rr', '-a -t 198.18.0.1:80 -r 198.18.1.1:8080 -m']) expect(dp.ipvsadm(l).code).toBe(0);
});
const err = (line: string) => { const r = dp.ipvsadm(line); return [r.code, r.stderr, r.stdout] as const; };
const TRY = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n";

describe('ipvsadm errors', () => {
  it.each([
    // Kernel refusals (exit 255).
    ['-A -t 198.18.0.1:80', 255, 'Service already exists\n'],
    ['-A -t 198.18.0.2:80 -s nosuch', 255, 'Scheduler or persistence engine not found\n'],
    ['-A -t 198.18.0.2:80 -p --pe sip', 255, 'Scheduler or persistence engine not found\n'],
    ['-E -t 198.18.0.9:80 -s rr', 255, 'No such service\n'],
    ['-D -t 198.18.0.9:80', 255, 'No such service\n'],
    ['-Z -t 198.18.0.9:80', 255, 'No such service\n'],
    ['-a -t 198.18.0.9:80 -r 198.18.1.1:80', 255, 'Service not defined\n'],
    ['-a -t 198.18.0.1:80 -r 198.18.1.1:8080 -m', 255, 'Destination already exists\n'],
    ['-e -t 198.18.0.1:80 -r 198.18.1.7:8080 -m', 255, 'No such destination\n'],
    ['-d -t 198.18.0.1:80 -r 198.18.1.1:8081', 255, 'No such destination\n'],
    ['-a -t 198.18.0.1:80 -r 198.18.1.2:80 -m -y 5', 255, 'Numerical result out of range\n'],
    // The service is looked up before its scheduler is read: an existing one is that, whatever -s says.
    ['-A -t 198.18.0.1:80 -s nosuch', 255, 'Service already exists\n'],
    // ip_vs_new_dest(): a real server must be a unicast address.
    ['-a -t 198.18.0.1:80 -r 224.0.0.1 -m', 255, 'Invalid operation.  Possibly wrong module version, address not unicast, ...\n'],
    ['-a -t 198.18.0.1:80 -r 0.0.0.0 -m', 255, 'Invalid operation.  Possibly wrong module version, address not unicast, ...\n'],
    ['-a -t 198.18.0.1:80 -r 0.1.2.3 -m', 255, 'Invalid operation.  Possibly wrong module version, address not unicast, ...\n'],
    ['-a -t 198.18.0.1:80 -r 255.255.255.255 -m', 255, 'Invalid operation.  Possibly wrong module version, address not unicast, ...\n'],
    // fail() (exit 2).
    ['-A -t 198.18.0.2', 2, 'Zero port specified for non-persistent service\n'],
    ['-A -t 198.18.0.2:80 -o', 2, 'One-Packet Scheduling is only for UDP virtual services\n'],
    ['-A -t 198.18.0.2:80 -m', 2, "Illegal 'forwarding-method' option with the 'add-service' command\n"],
    ['-A -t 198.18.0.2:80 -r 198.18.1.1', 2, "Illegal 'real-server' option with the 'add-service' command\n"],
    ['-a -t 198.18.0.1:80', 2, "You need to supply the 'real-server' option for the 'add-server' command\n"],
    ['-D', 2, "You need to supply the 'service-address' option for the 'delete-service' command\n"],
    ['-L -c -t 198.18.0.1:80', 2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n"],
    ['-L -c --stats', 2, 'options conflicts in the list command\n'],
    ['-A -t 198.18.0.2:80 -s rr -s wrr', 2, "multiple 'scheduler' options specified\n"],
    ['-A -t 198.18.0.300:80', 2, 'illegal virtual server address[:port] specified\n'],
    ['-A -t www.example.com:80', 2, 'illegal virtual server address[:port] specified\n'],
    ['-A -t 198.18.0.2:http', 2, 'illegal virtual server address[:port] specified\n'],
    ['-a -t 198.18.0.1:80 -r 198.18.1.2:70000', 2, 'illegal real server address[:port] specified\n'],
    ['-a -t 198.18.0.1:80 -r 198.18.1.2 -w 65536', 2, 'illegal weight specified\n'],
    ['-a -t 198.18.0.1:80 -r 198.18.1.2 -x -1', 2, 'illegal u_threshold specified\n'],
    ['-A -t 198.18.0.2:80 -p abc', 2, "invalid timeout value `abc' specified\n"],   // popt takes a non-option word
    ['-A -t 198.18.0.2:80 -p 0', 2, "invalid timeout value `0' specified\n"],
    ['-A -t 198.18.0.2:80 -p -M 255.255.256.0', 2, 'illegal virtual server persistent mask specified\n'],
    ['-A -t [fd00::2]:80 -p -M 129', 2, 'illegal ipv6 netmask specified\n'],
    ['-A -t 198.18.0.2:80 -s rr -b sh-port', 2, "incompatible scheduler flag `sh-port'\n"],
    ['-A -t 198.18.0.2:80 -b what', 2, "invalid scheduler flag `what'\n"],
    ['-A -f 0', 2, "invalid fwmark value `0' specified\n"],
    ['-A -t 198.18.0.2:80 -6', 2, '-6 used before -f\n\n'],
    ['-a -t 198.18.0.1:80 -r [fd00::1]:80 -m', 2, 'Different address family is allowed only for tunneling servers\n'],
    ['-a -t 198.18.0.1:80 -r 198.18.1.2 -m --tun-type ipip', 2, 'Tunnel options conflict with forward method\n'],
    ['-a -t 198.18.0.1:80 -r 198.18.1.2 -i --tun-port 6080', 2, "Illegal 'tun-port' option with the 'ipip' tunnel type\n"],
    ['-L -n extra', 2, 'unexpected argument extra\n'],
    ['-A -t 198.18.0.2:80 -L', 2, "invalid option `-L'\n"],
    ['--set 1 2', 2, '--set option requires 3 timeout values\n'],
    ['--set 1 2 x', 2, "invalid timeout value `x' specified\n"],
    // popt (exit 255).
    ['-A -t 198.18.0.2:80 --bogus', 255, '--bogus: unknown option\n'],
    ['-A -t', 255, '-t: missing argument\n'],
    ['--bogus', 255, TRY],
    ['-t 198.18.0.1:80', 255, TRY],
  ] as const)('%s', (line, code, stderr) => {
    expect(err(line)).toEqual([code, stderr, '']);
  });

  it('an IPv6 real server must be unicast and not link-local (ipv6_addr_type)', () => {
    expect(dp.ipvsadm('-A -t [fd00::2]:80 -s rr').code).toBe(0);
    for (const rs of ['[ff02::1]:80', '[fe80::1]:80', '[::]:80', '[::ffff:198.18.1.1]:80']) {
      expect([rs, ...err(`-a -t [fd00::2]:80 -r ${rs} -m`)]).toEqual([rs, 255, 'Invalid operation.  Possibly wrong module version, address not unicast, ...\n', '']);
    }
    expect(err('-a -t [fd00::2]:80 -r [fd00::9]:80 -m')).toEqual([0, '', '']);
    expect(err('-a -t [fd00::2]:80 -r [::1]:80 -m')).toEqual([0, '', '']);
  });

  it('exits 1 listing a missing service, and leaves the table unchanged after refusals', () => {
    const before = dp.ipvsadm('-S').stdout;
    expect(err('-L -n -t 198.18.0.9:80')).toEqual([1, 'No such service\n', '']);
    err('-A -t 198.18.0.1:80');
    err('-a -t 198.18.0.1:80 -r 198.18.1.1:8080 -m');
    expect(dp.ipvsadm('-S').stdout).toBe(before);
  });

  it('a command line or input that is not text (from JavaScript) is a usage error, exit 2, nothing changed', () => {
    const before = dp.ipvsadm('-S -n').stdout;
    for (const argv of [undefined, null, 7, ['-A', 7], [null]] as unknown as string[][]) {
      expect(dp.ipvsadm(argv)).toEqual({ code: 2, stdout: '', stderr: 'ipvsadm: the command line and its input are text\n' });
    }
    expect(dp.ipvsadm('-R', null as unknown as string).code).toBe(2);
    expect(dp.ipvsadm('-S -n').stdout).toBe(before);
  });

  it('-h prints the version and synopsis; -v the version', () => {
    const h = dp.ipvsadm('-h');
    expect(h.code).toBe(0);
    expect(h.stdout.split('\n').slice(0, 3)).toEqual([
      'ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)', 'Usage:',
      '  ipvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]']);
    expect(dp.ipvsadm('--version')).toEqual({ code: 0, stdout: 'ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n', stderr: '' });
  });
});

describe('ipvsadm changes', () => {
  it('--set changes the timeouts, 0 keeps one, and --timeout lists them', () => {
    expect(dp.ipvsadm('-L --timeout')).toEqual({ code: 0, stdout: 'Timeout (tcp tcpfin udp): 900 120 300\n', stderr: '' });
    expect(dp.ipvsadm('--set 3600 60 0').code).toBe(0);
    expect(dp.ipvsadm('-L --timeout').stdout).toBe('Timeout (tcp tcpfin udp): 3600 60 300\n');
    expect(dp.ipvsadm('-l --timeout -n').stdout).toBe('Timeout (tcp tcpfin udp): 3600 60 300\n');
    expect(err('-L --timeout --persistent-conn')).toEqual([2, 'options conflicts in the list command\n', '']);
  });

  it('sh and mh with flag-3: -S and -L name it, and what -S wrote restores to the same table', async () => {
    for (const sched of ['sh', 'mh']) {
      expect(dp.ipvsadm('-C').code).toBe(0);
      expect(dp.ipvsadm(`-A -t 198.18.0.1:80 -s ${sched} -b ${sched}-port,flag-3`).code).toBe(0);
      expect(dp.ipvsadm('-A -u 198.18.0.1:53 -s ' + sched + ' -b flag-3').code).toBe(0);
      expect(dp.ipvsadm('-a -u 198.18.0.1:53 -r 198.18.1.1:53 -m').code).toBe(0);
      const saved = dp.ipvsadm('-S -n').stdout;
      expect(saved).toContain(`-A -t 198.18.0.1:80 -s ${sched} -b ${sched}-port,flag-3\n`);
      expect(saved).toContain(`-A -u 198.18.0.1:53 -s ${sched} -b flag-3\n`);
      expect(dp.ipvsadm('-L -n').stdout).toContain(`UDP  198.18.0.1:53 ${sched} (flag-3)`);
      const listed = dp.ipvsadm('-L -n').stdout;
      expect(dp.ipvsadm('-C').code).toBe(0);
      expect(dp.ipvsadm('-R', saved).code).toBe(0);
      expect(dp.ipvsadm('-S -n').stdout).toBe(saved);
      expect(dp.ipvsadm('-L -n').stdout).toBe(listed);
    }
  });

  it('-E replaces scheduler and persistence (defaults included); -e replaces forwarding and weight', () => {
    expect(dp.ipvsadm('-E -t 198.18.0.1:80 -s sh -b sh-port -p 30').code).toBe(0);
    expect(dp.ipvsadm('-e -t 198.18.0.1:80 -r 198.18.1.1:8080 -m -w 7 -x 10 -y 2').code).toBe(0);
    expect(dp.ipvsadm('-S -n').stdout).toBe(
      '-A -t 198.18.0.1:80 -s sh -p 30 -b sh-port\n-a -t 198.18.0.1:80 -r 198.18.1.1:8080 -m -w 7\n');
    expect(dp.ipvsadm('-L -n --thresholds').stdout.split('\n')[4]).toBe(
      '  -> 198.18.1.1:8080              10         2          0          0         ');
    // -E without -s goes back to wlc and drops persistence, as ipvsadm sends a whole service.
    expect(dp.ipvsadm('-E -t 198.18.0.1:80').code).toBe(0);
    expect(dp.ipvsadm('-S -n').stdout.split('\n')[0]).toBe('-A -t 198.18.0.1:80 -s wlc');
  });

  it('-d removes a destination, -D a service; --long options and clustered short ones work', () => {
    expect(dp.ipvsadm('--add-server --tcp-service 198.18.0.1:80 --real-server 198.18.1.2:8080 --masquerading --weight=2').code).toBe(0);
    expect(dp.ipvsadm('-d -t 198.18.0.1:80 -r 198.18.1.1:8080').code).toBe(0);
    expect(dp.ipvsadm('-Sn').stdout).toBe('-A -t 198.18.0.1:80 -s rr\n-a -t 198.18.0.1:80 -r 198.18.1.2:8080 -m -w 2\n');
    expect(dp.ipvsadm('-A -u 198.18.0.5:53 -srr').code).toBe(0);
    expect(dp.ipvsadm('--delete-service -u 198.18.0.5:53').code).toBe(0);
    expect(dp.ipvsadm('-Sn').stdout.split('\n')[0]).toBe('-A -t 198.18.0.1:80 -s rr');
    expect(dp.ipvsadm('-Sn').stdout).not.toContain('-u');
  });
});
