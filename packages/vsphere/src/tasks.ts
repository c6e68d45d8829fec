/**
 * Waiting for vSphere tasks by polling `info` through RetrievePropertiesEx.
 * The poll interval starts at 100 ms and backs off to 1 s. While the task is
 * queued or running, `onProgress` gets info.progress each time it has risen
 * (never a lower value than already reported), and 100 once it succeeded. A task in state
 * `error` becomes its typed fault (info.error is a LocalizedMethodFault). On
 * timeout or abort the task is cancelled (CancelTask) when it is cancelable,
 * and a TimeoutError / the abort reason is raised; waiting never hangs past
 * the deadline (each poll has its own call timeout too).
 */
import { retrieveProperties } from './property.ts';
import type { SoapClient } from './soap/client.ts';
import { parseLocalizedFault } from './soap/client.ts';
import { ProtocolError, TimeoutError, VSphereError } from './soap/faults.ts';
import { child, num, bool, ref, text, type MoRef, type XmlNode } from './soap/xml.ts';
import type { TaskInfo, TaskState, WaitTaskOptions } from './types.ts';

export class Tasks {
  constructor(
    private readonly soap: SoapClient,
    private readonly collector: () => MoRef,
  ) {}

  async info(task: string): Promise<{ info: TaskInfo; raw: XmlNode }> {
    const t: MoRef = { type: 'Task', value: task };
    const [o] = await retrieveProperties(this.soap, this.collector(), { propSets: [{ type: 'Task', paths: ['info'] }], objects: [t] }, `reading task ${task}`);
    const raw = o?.props.get('info');
    if (!raw) throw new ProtocolError(`task ${task} has no info`);
    return {
      raw,
      info: {
        moref: task,
        state: (text(raw, 'state') ?? 'queued') as TaskState,
        progress: num(raw, 'progress'),
        descriptionId: text(raw, 'descriptionId'),
        entity: child(raw, 'entity')?.text,
        cancelable: bool(raw, 'cancelable'),
      },
    };
  }

  async cancel(task: string): Promise<void> {
    await this.soap.call('CancelTask', ref('_this', { type: 'Task', value: task }), { context: `CancelTask ${task}`, timeoutMs: 15_000 });
  }

  /**
   * Waits for a task; returns `info.result` (the element) on success.
   * Throws the task's typed fault on error.
   */
  async wait(task: string, opts: WaitTaskOptions = {}): Promise<XmlNode | undefined> {
    const timeoutMs = opts.timeoutMs ?? 30 * 60_000;
    const deadline = Date.now() + timeoutMs;
    const context = opts.context ?? `task ${task}`;
    let delay = 100;
    let lastProgress = -1;
    let transient = 0;
    for (;;) {
      if (opts.signal?.aborted) {
        await this.tryCancel(task, opts);
        throw opts.signal.reason instanceof Error ? opts.signal.reason : new TimeoutError(`${context}: aborted`);
      }
      let polled: { info: TaskInfo; raw: XmlNode };
      try {
        polled = await this.info(task);
        transient = 0;
      } catch (e) {
        // a lost connection while polling does not mean the task failed: poll again a few times
        if (e instanceof VSphereError && e.isRetriable() && ++transient <= 3 && Date.now() < deadline) {
          await sleep(Math.min(1000 * transient, Math.max(0, deadline - Date.now())), opts.signal);
          continue;
        }
        throw e;
      }
      const { info, raw } = polled;
      if (info.state === 'success') {
        if (lastProgress < 100) opts.onProgress?.(100, { ...info, progress: 100 });
        return child(raw, 'result');
      }
      if (info.state === 'error') {
        const err = child(raw, 'error');
        throw err ? parseLocalizedFault(err, context) : new ProtocolError(`${context}: task failed without error details`);
      }
      // progress only rises: a poll that reads an older or equal value reports nothing
      if (info.progress !== undefined && info.progress > lastProgress) {
        lastProgress = info.progress;
        opts.onProgress?.(info.progress, info);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        await this.tryCancel(task, opts);
        throw new TimeoutError(`${context}: still ${info.state}${info.progress !== undefined ? ` at ${info.progress}%` : ''} after ${timeoutMs} ms`);
      }
      await sleep(Math.min(delay, left), opts.signal);
      delay = Math.min(delay * 2, 1000);
    }
  }

  private async tryCancel(task: string, opts: WaitTaskOptions): Promise<void> {
    if (opts.cancelOnTimeout === false) return;
    await this.cancel(task).catch(() => undefined);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The moref value of a `returnval` that is a Task. */
export function taskRef(r: XmlNode | undefined, method: string): string {
  if (!r || !r.text) throw new ProtocolError(`${method} did not return a task`);
  return r.text;
}
