import { useEffect, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import type { Run } from '@vaultline/contracts';
import { useTransporters } from '../../api/health.ts';
import { useJobs } from '../../api/jobs.ts';
import { useLiveRuns } from '../../api/live.ts';
import { cancelRun, isActive, retryRun, useRun } from '../../api/runs.ts';
import { ConfirmDialog } from '../../components/ConfirmDialog.tsx';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { StatusPill } from '../../components/StatusPill.tsx';
import { RunVmBlock } from '../../components/run/RunVmBlock.tsx';
import { paths } from '../../config/paths.ts';
import { errorMessage } from '../../lib/api.ts';
import { formatDateTime } from '../../lib/format.ts';
import { elapsedText } from '../../lib/live-figures.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { runTitle, writesDisks } from '../../lib/run-title.ts';
import { RunSummary } from './RunSummary.tsx';
import { ThroughputChart } from './ThroughputChart.tsx';

type LogLine = Run['vms'][number]['log'][number] & { vm: string; shownAbove: boolean };

function RunLog({ run }: { run: Run }) {
  const lines: LogLine[] = run.vms
    .flatMap((vm) => {
      // A VM's or its disks' error is shown under the VM already: the warnings list does not repeat the same words.
      const above = new Set([vm.error, ...vm.disks.map((d) => d.error)].filter((e): e is string => Boolean(e)).map((e) => e.trim()));
      return vm.log.map((l) => ({ ...l, vm: vm.vmName, shownAbove: above.has(l.message.trim()) }));
    })
    .sort((a, b) => a.at.localeCompare(b.at));
  const warnings = lines.filter((l) => (l.level === 'warn' || l.level === 'error') && !l.shownAbove);
  return (
    <>
      {warnings.length > 0 && (
        <section className="card" aria-labelledby="warnings-title" data-testid="run-warnings">
          <h3 id="warnings-title">Warnings and errors ({warnings.length})</h3>
          {/* Scrolls when long: focusable, so a keyboard can scroll it too. */}
          <ul className="log" tabIndex={0} aria-labelledby="warnings-title">
            {warnings.map((l, i) => (
              <li key={i} className={`level-${l.level}`}>
                <span className="muted">{l.vm}</span> {l.message}
              </li>
            ))}
          </ul>
        </section>
      )}
      <section className="card" aria-labelledby="log-title">
        <h3 id="log-title">Run log</h3>
        {lines.length === 0 ? (
          <p className="muted">Nothing logged yet.</p>
        ) : (
          <ol className="log" data-testid="run-log" tabIndex={0} aria-labelledby="log-title">
            {lines.map((l, i) => (
              <li key={i} className={`level-${l.level}`}>
                <time className="muted" dateTime={l.at}>
                  {new Date(l.at).toLocaleTimeString()}
                </time>{' '}
                <span className="muted">{l.vm}</span> <span className="level">{l.level}</span> {l.message}
              </li>
            ))}
          </ol>
        )}
      </section>
    </>
  );
}

/** Retry failed VMs: a new run of only them; the button leads to it. */
function RetryFailed({ run }: { run: Run }) {
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const failed = run.vms.filter((v) => v.status === 'failed').length;
  return (
    <>
      <button
        type="button"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          setError(null);
          retryRun(run.id)
            .then(async (started) => {
              await qc.invalidateQueries({ queryKey: ['runs'] });
              await navigate(paths.run(started.runId));
            })
            .catch((err: unknown) => setError(errorMessage(err)))
            .finally(() => setBusy(false));
        }}
      >
        {busy ? 'Starting…' : `Retry ${failed === 1 ? 'the failed VM' : `${failed} failed VMs`}`}
      </button>
      {error && (
        <span className="reason" role="alert">
          {error}
        </span>
      )}
    </>
  );
}

function Cancel({ run }: { run: Run }) {
  const qc = useQueryClient();
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <>
      <button type="button" className="danger" onClick={() => setOpen(true)}>
        Cancel run
      </button>
      <ConfirmDialog
        open={open}
        title="Cancel this run?"
        confirmLabel="Cancel run"
        danger
        busy={busy}
        error={error}
        onCancel={() => setOpen(false)}
        onConfirm={() => {
          setBusy(true);
          cancelRun(run.id)
            .then(async () => {
              setOpen(false);
              await qc.invalidateQueries({ queryKey: ['runs'] });
            })
            .catch((err: unknown) => setError(errorMessage(err)))
            .finally(() => setBusy(false));
        }}
      >
        {writesDisks(run.kind) ? (
          <p>The restore stops between writes: every attached disk is detached and the VM it was creating is removed. A VM being replaced is left untouched unless the swap already began (then it is rolled back).</p>
        ) : run.kind === 'backup' ? (
          <p>VMs not started yet are skipped. A VM being copied stops, commits nothing, and its snapshot and any attached disk are removed.</p>
        ) : (
          <p>The repository task stops; what it already did stays done.</p>
        )}
      </ConfirmDialog>
    </>
  );
}

/** The time now, renewed every second while `on`, so an elapsed clock ticks between events. */
function useTicking(on: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!on) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [on]);
  return now;
}

export default function RunDetailPage() {
  const { id } = useParams();
  const me = useMe();
  const run = useRun(id!);
  const jobs = useJobs();
  const transporters = useTransporters();
  const live = useLiveRuns();
  const r = run.data;
  const job = r?.jobId ? jobs.data?.find((j) => j.id === r.jobId) : undefined;
  const title = r ? `${runTitle(r, job?.name)} — run` : 'Run';
  const now = useTicking(r !== undefined && isActive(r.status));
  const took = r ? elapsedText(r.startedAt, r.finishedAt, now) : null;

  return (
    <Page
      title={title}
      subtitle={
        r && (
          <>
            {r.trigger} · queued {formatDateTime(r.createdAt)}
            {r.startedAt && ` · started ${formatDateTime(r.startedAt)}`}
            {r.finishedAt && ` · finished ${formatDateTime(r.finishedAt)}`}
            {took !== null && ` · ${took}`}
            {job && (
              <>
                {' · '}
                <Link to={`${paths.runs}?job=${job.id}`}>other runs of this job</Link>
              </>
            )}
          </>
        )
      }
      actions={
        r && (
          <>
            <span aria-live="polite">
              <StatusPill status={r.status} testId="run-status" />
            </span>
            {isActive(r.status) && can(me.role, 'operator') && <Cancel run={r} />}
            {r.kind === 'backup' && !isActive(r.status) && !r.retriedBy && r.vms.some((v) => v.status === 'failed') && can(me.role, 'operator') && <RetryFailed run={r} />}
          </>
        )
      }
    >
      {run.isPending && <Loading what="the run" />}
      {run.isError && <LoadError what="the run" error={run.error} />}
      {r && (
        <>
          {r.error && (
            <div className="alert error" role="alert">
              {r.error}
            </div>
          )}
          {(r.retryOf || r.retriedBy) && (
            <p className="muted" data-testid="run-retries">
              {r.retryOf && (
                <>
                  {r.trigger === 'auto-retry' ? 'An automatic retry' : 'A retry'} of the failed VMs of <Link to={paths.run(r.retryOf)}>an earlier run</Link>.{' '}
                </>
              )}
              {r.retriedBy && (
                <>
                  Its failed VMs were retried in <Link to={paths.run(r.retriedBy)}>a later run</Link>.
                </>
              )}
            </p>
          )}
          {r.kind === 'backup' && r.vms.length > 0 && <RunSummary run={r} />}
          <section className="card" aria-label="VMs and disks">
            {r.vms.map((vm) => (
              <RunVmBlock key={vm.id} vm={vm} live={live} detailed kind={r.kind} transporterName={transporters.data?.find((t) => t.id === vm.transporterId)?.name} />
            ))}
          </section>
          {r.kind === 'backup' && <ThroughputChart run={r} live={live} />}
          <RunLog run={r} />
        </>
      )}
    </Page>
  );
}
