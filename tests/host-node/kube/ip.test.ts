// kube/ip.ts host:port text: the one splitter every ADDRESS:PORT option and endpoint string goes
// through, and its round trip with joinHostPort.
import { describe, expect, it } from 'vitest';
import { joinHostPort, splitHostPort } from '../../../host-node/kube/ip.js';
import { hostPort } from '../../../host-node/io/proxy-config.js';
import { splitHostPort as endpointOf } from '../../../host-node/core/svc-config.js';

describe('splitHostPort', () => {
  it('splits host:port and [v6]:port, keeps an empty host, refuses the rest', () => {
    expect(splitHostPort('10.0.0.1:80')).toEqual({ host: '10.0.0.1', port: 80 });
    expect(splitHostPort('[fd00::1]:8080')).toEqual({ host: 'fd00::1', port: 8080 });
    expect(splitHostPort(':10249')).toEqual({ host: '', port: 10249 });
    expect(splitHostPort('node.example:0')).toEqual({ host: 'node.example', port: 0 });
    for (const bad of ['10.0.0.1', 'fd00::1:80', '[fd00::1]', '10.0.0.1:65536', '10.0.0.1:-1', '10.0.0.1:8o', '[]:80', '10.0.0.1:123456', '']) {
      expect(splitHostPort(bad)).toBeNull();
    }
  });

  it('undoes joinHostPort', () => {
    for (const [h, p] of [['198.18.0.7', 53], ['fd00::a:1', 65535], ['::', 0]] as const) {
      expect(splitHostPort(joinHostPort(h, p))).toEqual({ host: h, port: p });
    }
  });

  it('serves the options and endpoint readers with their own rules on the host', () => {
    expect(hostPort(':10256', '--healthz-bind-address')).toEqual({ host: '0.0.0.0', port: 10256 });
    expect(() => hostPort('nohost:1', '--healthz-bind-address')).toThrow(/--healthz-bind-address: expected ADDRESS:PORT/);
    expect(endpointOf(':80')).toBeNull();   // an endpoint always names its host
    expect(endpointOf('[fd00::5]:53')).toEqual({ host: 'fd00::5', port: 53 });
  });
});
