import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { RunEvent } from '@vaultline/contracts';
import { connectRedis, EventBus, PermanentError, WorkConsumer, WorkQueue } from '../src/index.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('work queue over real Redis (BullMQ)', () => {
  it('delivers each run item once even when enqueued twice, and stops retrying a permanent error', async () => {
    const namespace = `test-${randomUUID()}`;
    const queue = new WorkQueue({ redisUrl: REDIS_URL, namespace });
    const seen: string[] = [];
    const failing = randomUUID();
    let failingAttempts = 0;
    const consumer = new WorkConsumer(
      async (payload) => {
        if (payload.runVmId === failing) {
          failingAttempts += 1;
          throw new PermanentError('VM was deleted');
        }
        seen.push(payload.runVmId);
      },
      { redisUrl: REDIS_URL, namespace, concurrency: 2 },
    );
    try {
      const id = randomUUID();
      await queue.enqueueBackupVm({ runVmId: id });
      await queue.enqueueBackupVm({ runVmId: id });
      await queue.enqueueBackupVm({ runVmId: failing });
      for (let i = 0; i < 100 && (seen.length < 1 || failingAttempts < 1); i++) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500));
      expect(seen).toEqual([id]);
      expect(failingAttempts).toBe(1);
      expect((await queue.counts()).failed).toBe(1);
    } finally {
      await consumer.close();
      await queue.obliterate();
      await queue.close();
    }
  });

  it('refuses a malformed payload at enqueue time', async () => {
    const queue = new WorkQueue({ redisUrl: REDIS_URL, namespace: `test-${randomUUID()}` });
    try {
      await expect(queue.enqueueBackupVm({ runVmId: 'not-a-uuid' })).rejects.toThrow();
    } finally {
      await queue.close();
    }
  });
});

describe('event bus over real Redis (pub/sub)', () => {
  it('delivers the events of the contract and drops anything else on its channel (not JSON, an unknown type, a missing field)', async () => {
    const ns = `vltest-${randomUUID()}`;
    const bus = new EventBus(REDIS_URL, ns);
    const raw = connectRedis(REDIS_URL);
    const got: RunEvent[] = [];
    try {
      await bus.subscribe((e) => got.push(e));
      const good: RunEvent = { type: 'run.log', runId: 'r', runVmId: 'v', level: 'warn', message: 'disk 2 retried' };
      const channel = `${ns}:events`;
      for (const junk of ['not json', JSON.stringify({ type: 'run.explode', runId: 'r' }), JSON.stringify({ type: 'vm.finished', runId: 'r', runVmId: 'v', status: 'succeeded' })]) await raw.publish(channel, junk);
      await bus.publish(good);
      await bus.publish({ type: 'run.finished', runId: 'r', status: 'warning' });
      for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toEqual([good, { type: 'run.finished', runId: 'r', status: 'warning' }]);
    } finally {
      await bus.close();
      raw.disconnect();
    }
  });
});
