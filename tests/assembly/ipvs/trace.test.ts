// The trace: where a new connection from a client would go, without changing any state.
import { describe, it, expect } from 'vitest';
import { Lab, tcp } from './harness';

const VIP = '198.18.0.100';
const dests = [1, 2, 3].map((i) => ({ address: `198.18.1.${i}`, port: 80 }));
const q = (src = '198.18.7.1', sport = 1000) => ({ protocol: 'tcp' as const, src, sport, dst: VIP, dport: 80 });

describe('trace', () => {
  it('rr and wrr: the next destination in sequence, and tracing does not move the cursor', () => {
    for (const scheduler of ['rr', 'wrr'] as const) {
      const lab = new Lab();
      lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler }, dests);
      for (let k = 0; k < 5; k++) {
        const t = lab.p.trace(q('198.18.7.1', 2000 + k), 0);
        expect(lab.p.trace(q('198.18.7.1', 2000 + k), 0)).toEqual(t);
        expect(t).toMatchObject({ kind: 'scheduler', choices: [{ probability: 1 }] });
        expect(lab.send(tcp('198.18.7.1', 2000 + k, VIP, 80, 'S')).dest).toBe(t.choices[0]!.destId);
      }
    }
  });

  it('an existing connection, a persistence template, no service, no destination', () => {
    const lab = new Lab();
    const { svc } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr', persistent: 60 }, dests);
    const sent = lab.send(tcp('198.18.7.1', 1000, VIP, 80, 'S'));
    const c = lab.p.trace(q(), 0);
    expect(c).toMatchObject({ kind: 'connection', entry: sent.result.conn, choices: [{ destId: sent.dest, address: lab.dest(sent.dest).address }] });
    const t = lab.p.trace(q('198.18.7.1', 1001), 0);
    expect(t).toMatchObject({ kind: 'template', service: svc, choices: [{ destId: sent.dest }] });
    expect(lab.p.trace({ ...q(), dport: 81 }, 0)).toMatchObject({ kind: 'none', choices: [] });
    lab.service({ protocol: 'tcp', address: VIP, port: 82 });
    expect(lab.p.trace({ ...q(), dport: 82 }, 0)).toMatchObject({ kind: 'no-destination', choices: [] });
  });

  it('a SYN would reuse a closed entry: the trace then shows the scheduler', () => {
    const lab = new Lab();
    lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr' }, dests);
    lab.send(tcp('198.18.7.1', 1000, VIP, 80, 'S'));
    lab.send(tcp('198.18.7.1', 1000, VIP, 80, 'A'));
    expect(lab.p.trace(q(), 0).kind).toBe('connection');
    lab.send(tcp('198.18.7.1', 1000, VIP, 80, 'R'));
    expect(lab.p.connections(0)[0]!.state).toBe('CLOSE');
    expect(lab.p.trace(q(), 0).kind).toBe('scheduler');
  });

  it('lblc: tracing creates no cache entry', () => {
    const lab = new Lab();
    const { ids: [A, B] } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'lblc' }, dests.slice(0, 2));
    lab.setCounts(A!, 1, 0);
    expect(lab.p.trace(q(), 0).choices[0]!.destId).toBe(B);
    lab.setCounts(A!, 0, 0); lab.setCounts(B!, 1, 0);
    // Had the trace cached B for the VIP, B (not overloaded) would be kept; wlc now says A.
    expect(lab.send(tcp('198.18.7.1', 1000, VIP, 80, 'S')).dest).toBe(A);
  });

  it('twos: the trace draws nothing from the random stream', () => {
    const picks = (trace: boolean) => {
      const lab = new Lab({ seed: 5 });
      lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'twos' }, dests);
      return Array.from({ length: 50 }, (_, k) => {
        if (trace) lab.p.trace(q(), 0);
        return lab.send(tcp('198.18.7.1', 3000 + k, VIP, 80, 'S')).dest;
      });
    };
    expect(picks(true)).toEqual(picks(false));
  });
});
