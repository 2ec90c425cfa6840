// The release core (the embedded build every host loads) carries the ipset ABI: the Dataplane's
// ipset table names sets as its iptables rules do, so `-m set` rules loaded with iptablesRestore
// follow set edits at once; a set a rule names cannot be destroyed.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane';
import { buildPacket } from '../../../host-node/core/packet';

describe('ipset on the full Dataplane', () => {
  it('KUBE-CLUSTER-IP dst,dst drops and passes real packets; set edits apply without an iptables reload', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 9 });
    let now = 5_000;
    const ipset = dp.ipset;
    ipset.restore('create KUBE-CLUSTER-IP hash:ip,port comment\nadd KUBE-CLUSTER-IP 10.96.0.1,tcp:443\n');
    dp.iptablesRestore('*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n' +
      '-A FORWARD -m set --match-set KUBE-CLUSTER-IP dst,dst -j DROP\nCOMMIT\n');
    const send = (dport: number, sport: number) =>
      dp.process(buildPacket({ src: '198.18.0.1', dst: '10.96.0.1', proto: 'tcp', sport, dport, flags: 'S' }), now++).verdict;
    expect(send(443, 40000)).toBe('DROP');
    expect(send(80, 40001)).not.toBe('DROP');
    ipset.command('add KUBE-CLUSTER-IP 10.96.0.1,tcp:80');
    expect(send(80, 40002)).toBe('DROP');
    ipset.command('del KUBE-CLUSTER-IP 10.96.0.1,tcp:443');
    expect(send(443, 40003)).not.toBe('DROP');
    expect(() => ipset.command('destroy KUBE-CLUSTER-IP')).toThrow(/in use|referenced/i);
  });
});

describe('a set with more members than a call takes arguments', () => {
  it('lists and saves every member (spreading 150,000 member lines as arguments overflowed the stack)', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 9 });
    const n = 150_000;
    const adds = Array.from({ length: n }, (_, i) => `add BIG 198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`);
    dp.ipset.restore(`create BIG hash:ip family inet maxelem ${2 * n}\n${adds.join('\n')}\n`);
    const list = dp.ipset.command(['list', 'BIG']);
    expect(list.status).toBe(0);
    expect(list.output).toContain(`Number of entries: ${n}\n`);
    expect(list.output.split('\n').filter((l) => l.startsWith('198.')).length).toBe(n);
    expect(dp.ipset.command(['save', 'BIG']).output.split('\n').filter((l) => l.startsWith('add BIG ')).length).toBe(n);
  });
});
