import { useEffect, useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { collectGarbageNow, saveMaintenance, useMaintenance, verifyNow } from '../../api/maintenance.ts';
import { FormError } from '../../components/FormError.tsx';
import { LoadError, Loading } from '../../components/Page.tsx';
import { paths } from '../../config/paths.ts';
import { errorMessage } from '../../lib/api.ts';
import { formatDateTime } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { useAction } from '../../lib/use-action.ts';
import { SchedulePreviewBox } from '../jobs/wizard/ScheduleStep.tsx';
import { describeSchedule } from '../jobs/schedule.ts';

type Flash = { kind: 'ok' | 'error'; text: string; runId?: string };

/** GC and verify of one repository: schedules (admin), on-demand runs (operator), damage and the last full verify. */
export function MaintenancePanel({ repositoryId }: { repositoryId: string }) {
  const me = useMe();
  const qc = useQueryClient();
  const m = useMaintenance(repositoryId);
  const admin = can(me.role, 'admin');
  const operator = can(me.role, 'operator');
  const [gc, setGc] = useState('');
  const [verify, setVerify] = useState('');
  const [samplePct, setSamplePct] = useState(10);
  const [nowSample, setNowSample] = useState<'sample' | 'full'>('sample');
  const [flash, setFlash] = useState<Flash | null>(null);
  const [starting, setStarting] = useState<'verify' | 'gc' | null>(null);
  const save = useAction();

  useEffect(() => {
    if (!m.data) return;
    setGc(m.data.gcSchedule ?? '');
    setVerify(m.data.verifySchedule ?? '');
    setSamplePct(Math.round(m.data.verifySample * 1000) / 10);
  }, [m.data]);

  const start = (what: 'verify' | 'gc') => {
    setFlash(null);
    setStarting(what);
    const call = what === 'verify' ? verifyNow(repositoryId, nowSample === 'full' ? 1 : Math.min(1, Math.max(0.001, samplePct / 100))) : collectGarbageNow(repositoryId);
    call
      .then(async ({ runId }) => {
        setFlash({ kind: 'ok', text: what === 'verify' ? `Verify started (${nowSample === 'full' ? 'every chunk' : `${samplePct}% sample`}).` : 'Garbage collection started.', runId });
        await qc.invalidateQueries({ queryKey: ['runs'] });
      })
      .catch((err: unknown) => setFlash({ kind: 'error', text: errorMessage(err) }))
      .finally(() => setStarting(null));
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!(samplePct > 0 && samplePct <= 100)) {
      save.setError('The verify sample is more than 0% and at most 100%.');
      return;
    }
    return save.run(async () => {
      await saveMaintenance(repositoryId, { gcSchedule: gc.trim() || null, verifySchedule: verify.trim() || null, verifySample: samplePct / 100 });
      await qc.invalidateQueries({ queryKey: ['repositories', repositoryId, 'maintenance'] });
      setFlash({ kind: 'ok', text: 'Maintenance schedules saved.' });
    });
  };

  return (
    <section className="card" aria-labelledby="maint-title" data-testid="maintenance">
      <h3 id="maint-title">Keeping it healthy</h3>
      <p className="muted small">
        Garbage collection frees the space of removed restore points (never while a backup writes here). Verify re-reads and re-hashes chunks; a damaged or missing one marks its restore points
        damaged, and the verify run fails so it is seen. Both appear in Runs.
      </p>
      {m.isPending && <Loading what="the maintenance settings" />}
      {m.isError && <LoadError what="the maintenance settings" error={m.error} />}
      {m.data && (
        <>
          <div className="grid stats">
            <div className="card stat">
              <span className="muted small">Damaged restore points</span>
              <strong className={m.data.damagedRestorePoints > 0 ? 'bad-text' : undefined} data-testid="damaged-count">
                {m.data.damagedRestorePoints}
              </strong>
            </div>
            <div className="card stat">
              <span className="muted small">Last full verify</span>
              <strong data-testid="last-full-verify">{m.data.lastFullVerifyAt ? formatDateTime(m.data.lastFullVerifyAt) : 'never'}</strong>
            </div>
          </div>
          {flash && (
            <div className={`alert ${flash.kind}`} role={flash.kind === 'error' ? 'alert' : 'status'}>
              {flash.text} {flash.runId && <Link to={paths.run(flash.runId)}>Watch the run</Link>}
            </div>
          )}
          {operator && (
            <div className="toolbar maintenance-actions">
              <fieldset className="segmented">
                <legend>Verify now</legend>
                <label>
                  <input type="radio" name="verifyNow" checked={nowSample === 'sample'} onChange={() => setNowSample('sample')} /> a {samplePct}% sample
                </label>
                <label>
                  <input type="radio" name="verifyNow" checked={nowSample === 'full'} onChange={() => setNowSample('full')} /> every chunk (full)
                </label>
                <button type="button" className="primary" disabled={starting !== null} onClick={() => start('verify')}>
                  {starting === 'verify' ? 'Starting…' : 'Verify now'}
                </button>
              </fieldset>
              <button type="button" disabled={starting !== null} onClick={() => start('gc')}>
                {starting === 'gc' ? 'Starting…' : 'Collect garbage now'}
              </button>
            </div>
          )}
          {admin ? (
            <form className="form" onSubmit={(e) => void submit(e)} aria-label="Maintenance schedules">
              <div className="form-row">
                <label>
                  Garbage collection schedule
                  <input className="mono" value={gc} onChange={(e) => setGc(e.target.value)} placeholder="30 1 * * *" spellCheck={false} autoComplete="off" />
                  <SchedulePreviewBox cron={gc.trim() || null} whenNone="Empty: garbage is collected only when started by hand." />
                </label>
                <label>
                  Verify schedule
                  <input className="mono" value={verify} onChange={(e) => setVerify(e.target.value)} placeholder="0 3 * * 6" spellCheck={false} autoComplete="off" />
                  <SchedulePreviewBox cron={verify.trim() || null} whenNone="Empty: verified only when started by hand." />
                </label>
              </div>
              <label className="number-field">
                Scheduled verify reads
                <span className="with-suffix">
                  <input type="number" min={0.1} max={100} step={0.1} value={Number.isFinite(samplePct) ? samplePct : ''} onChange={(e) => setSamplePct(e.target.valueAsNumber)} required />
                  <span className="muted">% of the chunks (100 = full)</span>
                </span>
              </label>
              <FormError message={save.error} />
              <div className="form-actions">
                <button type="submit" className="primary" disabled={save.busy}>
                  {save.busy ? 'Saving…' : 'Save schedules'}
                </button>
              </div>
            </form>
          ) : (
            <dl className="summary">
              <dt>Garbage collection</dt>
              <dd>{m.data.gcSchedule ? `${describeSchedule(m.data.gcSchedule)}` : 'by hand only'}</dd>
              <dt>Verify</dt>
              <dd>
                {m.data.verifySchedule ? describeSchedule(m.data.verifySchedule) : 'by hand only'} · {Math.round(m.data.verifySample * 1000) / 10}% of the chunks
              </dd>
            </dl>
          )}
        </>
      )}
    </section>
  );
}
