import { describe, expect, it } from 'vitest';
import { Semaphore, TransporterLimits } from '../src/backup/limits.ts';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('Transporter limits', () => {
  it('never runs more disk tasks than allowed, and runs waiters in order', async () => {
    const limits = new TransporterLimits(2, 10);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const release = await limits.disk('san', 'host-1');
        running++;
        peak = Math.max(peak, running);
        order.push(i);
        await tick();
        running--;
        release();
      }),
    );
    expect(peak).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('caps network streams per ESXi host, not across hosts', async () => {
    const limits = new TransporterLimits(10, 1);
    const a1 = await limits.disk('nbdssl', 'host-a');
    const b1 = await limits.disk('nbdssl', 'host-b');
    let a2Got = false;
    const a2 = limits.disk('nbdssl', 'host-a').then((r) => {
      a2Got = true;
      return r;
    });
    await tick();
    expect(a2Got).toBe(false);
    const hot = await limits.disk('hotadd', 'host-a');
    a1();
    (await a2)();
    expect(a2Got).toBe(true);
    b1();
    hot();
  });

  it('a release called twice frees one slot only', async () => {
    const s = new Semaphore(1);
    const r = await s.acquire();
    r();
    r();
    expect(s.inUse).toBe(0);
    await s.acquire();
    expect(s.inUse).toBe(1);
  });
});
