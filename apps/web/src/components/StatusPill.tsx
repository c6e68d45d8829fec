import type { RunStatus } from '@vaultline/contracts';

const LABEL: Record<RunStatus, string> = { queued: 'queued', running: 'running', succeeded: 'succeeded', warning: 'warning', failed: 'failed', cancelled: 'cancelled' };

export function StatusPill({ status, testId }: { status: RunStatus; testId?: string }) {
  return (
    <span className={`pill status-${status}`} data-testid={testId}>
      {LABEL[status]}
    </span>
  );
}
