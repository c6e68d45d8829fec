/**
 * What every kind of work does at its start and when it throws, in one place. An item starts by saying,
 * first in its log, whether it takes over an interrupted attempt or which attempt it is. Its work
 * throwing ends it the same way whatever the work: a cancel ends it `cancelled`, saying what was undone;
 * an error another attempt could get past waits for the queue's retry while attempts are left; anything
 * else fails it with the error as the reason (and a permanent error tells the queue not to try again).
 */
import { CancelledError, type RunRecorder } from '@vaultline/core';
import type { Db } from '@vaultline/db';
import { PermanentError } from '@vaultline/queue';
import { forOperators } from '@vaultline/vsphere';
import { retryCanHelp } from './retry.ts';
import { interruptedAttempt, takeoverMessage } from './takeover.ts';

export interface Attempt {
  /** This delivery's attempt (1 for the first). */
  number: number;
  /** When the work is retried by the queue: how many attempts it gets. */
  of?: number;
}

/** Starts `item` in `phase`, its log opening with a takeover or a later attempt. */
export async function startItem(
  db: Db,
  rec: RunRecorder,
  item: Parameters<typeof interruptedAttempt>[1],
  work: 'backup' | 'restore',
  phase: string,
  attempt: Attempt,
  me: { id: string; name: string },
): Promise<void> {
  const interrupted = await interruptedAttempt(db, item, work === 'backup' ? 'read' : 'written');
  await rec.start(phase);
  if (interrupted) rec.log('warn', takeoverMessage(interrupted, me, work));
  else if (attempt.number > 1) {
    rec.log(
      'warn',
      work === 'backup' ? `attempt ${attempt.number} of ${attempt.of ?? attempt.number}: the earlier attempt failed and what it left was removed` : `attempt ${attempt.number}: an earlier attempt of this restore failed; what it left was removed; restoring again`,
    );
  }
}

/** Ends (or parks for a retry) an item whose work threw `err`; rethrows for the queue when it should try again. */
export async function settleThrown(rec: RunRecorder, err: unknown, how: { cancelled: string; attempt?: Attempt }): Promise<void> {
  if (err instanceof CancelledError) {
    rec.log('warn', how.cancelled);
    await rec.finish('cancelled', null);
    return;
  }
  // In the operator's words, with what to do about a vSphere fault (the Transporter's own log keeps the raw error).
  const message = forOperators(err);
  const retried = how.attempt?.of !== undefined;
  const permanent = retried && !retryCanHelp(err);
  if (!retried || permanent || how.attempt!.number >= how.attempt!.of!) {
    rec.log('error', message);
    await rec.finish('failed', message);
    if (permanent) throw new PermanentError(message);
    return;
  }
  rec.log('warn', `attempt ${how.attempt!.number} failed: ${message}; will retry`);
  await rec.retrying(message);
  throw err;
}
