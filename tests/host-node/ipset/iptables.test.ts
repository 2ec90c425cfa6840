// `-m set --match-set` in iptables rulesets loaded through the engine, against sets loaded through
// IpsetTable, with real packets: kube-proxy's IPVS-mode sets and directions (KUBE-CLUSTER-IP
// dst,dst, KUBE-LOOP-BACK dst,dst,src, KUBE-NODE-PORT-TCP dst, KUBE-LOAD-BALANCER-SOURCE-CIDR
// dst,dst,src), `!`, set changes taking effect without reloading rules, swap under live rules,
// IPv6, a rule naming a set that does not exist, references, and element counters.
import { describe, it, expect } from 'vitest';
import { Engine, filterWith, V, IS_SET_NO_TABLE } from './engine';
import { IpsetError } from '../../../host-node/ipset/errors';

const tcp = (src: string, dst: string, sport: number, dport: number) => ({ src, dst, proto: 'tcp' as const, sport, dport, flags: 'S' });
const udp = (src: string, dst: string, sport: number, dport: number) => ({ src, dst, proto: 'udp' as const, sport, dport });

const KUBE_SETS = `create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 comment
add KUBE-CLUSTER-IP 10.96.0.1,tcp:443 comment "Kubernetes service cluster ip + port for masquerade purpose"
add KUBE-CLUSTER-IP 10.96.0.10,udp:53 comment "Kubernetes service cluster ip + port for masquerade purpose"
add KUBE-CLUSTER-IP 10.96.0.10,tcp:53 comment "Kubernetes service cluster ip + port for masquerade purpose"
create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536 comment
add KUBE-LOOP-BACK 10.244.1.5,tcp:8443,10.244.1.5
create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 comment
add KUBE-NODE-PORT-TCP 30080
create KUBE-LOAD-BALANCER-SOURCE-CIDR hash:ip,port,net family inet hashsize 1024 maxelem 65536 comment
add KUBE-LOAD-BALANCER-SOURCE-CIDR 198.18.100.1,tcp:443,198.18.0.0/16
add KUBE-LOAD-BALANCER-SOURCE-CIDR 198.18.100.1,tcp:443,198.18.7.0/24 nomatch
`;

describe('-m set in the iptables engine', () => {
  it('KUBE-CLUSTER-IP dst,dst marks exactly the service ip:port pairs (kube-proxy ipvs KUBE-SERVICES)', () => {
    const e = new Engine();
    e.ipset.restore(KUBE_SETS);
    e.iptables('*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n' +
      '-A PREROUTING ! -s 10.244.0.0/16 -m set --match-set KUBE-CLUSTER-IP dst,dst -j MARK --set-xmark 0x4000/0x4000\nCOMMIT\n');
    expect(e.send(tcp('198.18.0.1', '10.96.0.1', 40000, 443)).mark).toBe(0x4000);
    expect(e.send(tcp('198.18.0.1', '10.96.0.1', 40001, 80)).mark).toBe(0);        // port not in the set
    expect(e.send(udp('198.18.0.1', '10.96.0.10', 40002, 53)).mark).toBe(0x4000);
    expect(e.send(tcp('198.18.0.1', '10.96.0.10', 40003, 53)).mark).toBe(0x4000);
    expect(e.send(udp('198.18.0.1', '10.96.0.1', 40004, 443)).mark).toBe(0);        // udp:443 is not tcp:443
    expect(e.send(tcp('10.244.3.3', '10.96.0.1', 40005, 443)).mark).toBe(0);        // from a pod: ! -s
    expect(e.send(tcp('10.96.0.1', '198.18.0.1', 443, 40006)).mark).toBe(0);        // the reply direction
  });

  it('KUBE-LOOP-BACK dst,dst,src catches hairpin traffic only; ! inverts', () => {
    const e = new Engine();
    e.ipset.restore(KUBE_SETS);
    e.iptables(filterWith(
      '-A TEST -p tcp --dport 8443 -m set --match-set KUBE-LOOP-BACK dst,dst,src -j DROP\n' +
      '-A TEST -p tcp --dport 9443 -m set ! --match-set KUBE-LOOP-BACK dst,dst,src -j DROP'));
    expect(e.send(tcp('10.244.1.5', '10.244.1.5', 40000, 8443)).verdict).toBe(V.DROP);
    expect(e.send(tcp('10.244.1.6', '10.244.1.5', 40001, 8443)).verdict).toBe(V.PASS);
    expect(e.send(tcp('10.244.1.6', '10.244.1.5', 40002, 9443)).verdict).toBe(V.DROP);
  });

  it('KUBE-NODE-PORT-TCP dst (bitmap:port) and the load-balancer source ranges with a nomatch hole', () => {
    const e = new Engine();
    e.ipset.restore(KUBE_SETS);
    e.iptables(filterWith(
      '-A TEST -p tcp -m set --match-set KUBE-NODE-PORT-TCP dst -j ACCEPT\n' +
      '-A TEST -p tcp --dport 443 -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j ACCEPT\n' +
      '-A TEST -p tcp -j DROP'));
    expect(e.send(tcp('198.18.0.1', '198.18.0.2', 40000, 30080)).verdict).toBe(V.PASS);
    expect(e.send(tcp('198.18.0.1', '198.18.0.2', 40001, 30081)).verdict).toBe(V.DROP);
    expect(e.send(tcp('198.18.3.3', '198.18.100.1', 40002, 443)).verdict).toBe(V.PASS);
    expect(e.send(tcp('198.18.7.3', '198.18.100.1', 40003, 443)).verdict).toBe(V.DROP);   // nomatch /24
    expect(e.send(tcp('198.19.0.3', '198.18.100.1', 40004, 443)).verdict).toBe(V.DROP);
  });

  it('--return-nomatch swaps the answers of a type with nomatch: its nomatch elements match, its plain ones do not', () => {
    // ip_set_core.c ip_set_test(): a type without nomatch (hash:ip) answers as without the flag.
    const e = new Engine();
    e.ipset.restore('create NETS hash:net\nadd NETS 198.18.0.0/16\nadd NETS 198.18.7.0/24 nomatch\ncreate IPS hash:ip\nadd IPS 198.19.0.9\n');
    e.iptables(filterWith(
      '-A TEST -p udp --dport 53 -m set --match-set NETS src --return-nomatch -j DROP\n' +
      '-A TEST -p udp --dport 54 -m set --match-set NETS src -j DROP\n' +
      '-A TEST -p udp --dport 55 -m set ! --match-set NETS src --return-nomatch -j DROP\n' +
      '-A TEST -p udp --dport 56 -m set --match-set IPS src --return-nomatch -j DROP'));
    const to = (src: string, dport: number, sport: number) => e.send(udp(src, '198.18.200.1', sport, dport)).verdict;
    expect(to('198.18.7.1', 53, 1001)).toBe(V.DROP);    // the nomatch hole
    expect(to('198.18.1.1', 53, 1002)).toBe(V.PASS);    // a plain element
    expect(to('198.20.0.1', 53, 1003)).toBe(V.PASS);    // no element
    expect(to('198.18.7.1', 54, 1004)).toBe(V.PASS);    // without the flag the hole does not match
    expect(to('198.18.1.1', 54, 1005)).toBe(V.DROP);
    expect(to('198.18.1.1', 55, 1006)).toBe(V.DROP);    // ! of the swapped answer
    expect(to('198.18.7.1', 55, 1007)).toBe(V.PASS);
    expect(to('198.19.0.9', 56, 1008)).toBe(V.DROP);    // hash:ip: as without the flag
  });

  it('set changes apply to loaded rules at once; a swap under live rules changes what they see', () => {
    const e = new Engine();
    e.ipset.restore('create BLOCK hash:net\ncreate BLOCK-NEW hash:net\n');
    e.iptables(filterWith('-A TEST -m set --match-set BLOCK src -j DROP'));
    const from = (src: string, sport: number) => e.send(udp(src, '198.18.0.2', sport, 53)).verdict;
    expect(from('198.18.5.5', 1001)).toBe(V.PASS);
    e.ipset.command('add BLOCK 198.18.5.0/24');
    expect(from('198.18.5.5', 1002)).toBe(V.DROP);
    e.ipset.command('del BLOCK 198.18.5.0/24');
    expect(from('198.18.5.5', 1003)).toBe(V.PASS);
    e.ipset.restore('flush BLOCK-NEW\nadd BLOCK-NEW 198.18.9.0/24\nswap BLOCK BLOCK-NEW\ndestroy BLOCK-NEW\n');
    expect(from('198.18.9.9', 1004)).toBe(V.DROP);
    expect(from('198.18.5.5', 1005)).toBe(V.PASS);
    // A failing restore leaves the rule's view alone.
    expect(() => e.ipset.restore('flush BLOCK\nadd BLOCK 300.0.0.0/8\n')).toThrow(IpsetError);
    expect(from('198.18.9.9', 1006)).toBe(V.DROP);
  });

  it('ip6tables rules match inet6 sets; a v4 set never matches IPv6 packets', () => {
    const e = new Engine();
    e.ipset.restore('create KUBE-6-CLUSTER-IP hash:ip,port family inet6\nadd KUBE-6-CLUSTER-IP fd00:96::1,tcp:443\n' +
      'create V4 hash:ip\nadd V4 10.0.0.1\n');
    e.iptables(filterWith('-A TEST -m set --match-set KUBE-6-CLUSTER-IP dst,dst -j DROP\n-A TEST -m set ! --match-set V4 dst -j ACCEPT\n-A TEST -j DROP'), 6);
    expect(e.send(tcp('fd00::5', 'fd00:96::1', 40000, 443)).verdict).toBe(V.DROP);
    expect(e.send(tcp('fd00::5', 'fd00:96::2', 40001, 443)).verdict).toBe(V.PASS);   // ! V4: no match, so ACCEPT
  });

  it('a rule naming a set nobody created matches as an empty set and is counted', () => {
    const e = new Engine();
    e.iptables(filterWith('-A TEST -p udp --dport 1 -m set --match-set NOPE dst -j DROP\n-A TEST -p udp --dport 2 -m set ! --match-set NOPE dst -j DROP'));
    expect(e.send(udp('198.18.0.1', '198.18.0.2', 5, 1)).verdict).toBe(V.PASS);
    expect(e.send(udp('198.18.0.1', '198.18.0.2', 5, 2)).verdict).toBe(V.DROP);
    expect(e.stat(IS_SET_NO_TABLE)).toBe(2n);
    // Creating it later makes the same rules see it.
    e.ipset.restore('create NOPE hash:ip\nadd NOPE 198.18.0.2\n');
    expect(e.send(udp('198.18.0.1', '198.18.0.2', 6, 1)).verdict).toBe(V.DROP);
    expect(e.stat(IS_SET_NO_TABLE)).toBe(2n);
  });

  it('rules referencing a set protect it and show in its References; element counters count matches', () => {
    const e = new Engine();
    e.ipset.restore('create C hash:ip,port counters\nadd C 10.96.0.10,udp:53\n');
    e.iptables(filterWith('-A TEST -m set --match-set C dst,dst -j ACCEPT\n-A TEST -m set --match-set C src,src -j ACCEPT'));
    expect(e.ipset.list('C', { terse: true })).toContain('References: 2\n');
    expect(() => e.ipset.command('destroy C')).toThrow('Set cannot be destroyed: it is in use by a kernel component');
    e.send({ ...udp('10.244.0.5', '10.96.0.10', 3333, 53), payload: 'x'.repeat(12) });
    e.send({ ...udp('10.244.0.5', '10.96.0.10', 3334, 53), payload: 'x'.repeat(12) });
    expect(e.ipset.list('C')).toContain('10.96.0.10,udp:53 packets 2 bytes 80\n');
    e.iptables(filterWith(''));
    e.ipset.command('destroy C');
    expect(e.ipset.names()).toEqual([]);
  });
});
