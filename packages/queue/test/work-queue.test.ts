import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PermanentError, WorkConsumer, WorkQueue } from '../src/index.ts';

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
