import { useEffect, useRef, useState } from 'react';
import { useNavigate, useParams } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { retentionLowered, type Job, type JobUpdate, type Retention, type RepositoryDto, type VCenter } from '@vaultline/contracts';
import { createJob, previewSchedule, runJob, updateJob, useJob } from '../../api/jobs.ts';
import { useRepositories } from '../../api/repositories.ts';
import { useVCenters } from '../../api/vcenters.ts';
import { FormError } from '../../components/FormError.tsx';
import { LoadError, Loading, NotAllowed, Page } from '../../components/Page.tsx';
import { paths } from '../../config/paths.ts';
import { ApiRequestError, errorMessage } from '../../lib/api.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { toCron } from './schedule.ts';
import { DestinationStep } from './wizard/DestinationStep.tsx';
import { OptionsStep } from './wizard/OptionsStep.tsx';
import { ReviewStep } from './wizard/ReviewStep.tsx';
import { ScheduleStep } from './wizard/ScheduleStep.tsx';
import { SourcesStep } from './wizard/SourcesStep.tsx';
import { emptyState, stateFromJob, STEPS, suggestName, type WizardState } from './wizard/state.ts';

/** Which step fixes a field the server complained about. */
const STEP_OF_FIELD: Record<string, number> = { sources: 0, vcenterId: 0, repositoryId: 1, schedule: 2, transportMode: 3, options: 3, name: 4 };

async function stepProblem(step: number, s: WizardState): Promise<string | null> {
  switch (STEPS[step]) {
    case 'Sources':
      return s.sources.length === 0 ? 'Choose at least one VM.' : null;
    case 'Destination':
      return s.repositoryId ? null : 'Choose a repository.';
    case 'Schedule': {
      const cron = toCron(s.schedule);
      if (cron === '') return 'Enter a cron expression, or choose another schedule.';
      if (!cron) return null;
      try {
        await previewSchedule(cron);
        return null;
      } catch (err) {
        return errorMessage(err);
      }
    }
    case 'Options': {
      const r = s.options.retention;
      const nums = [s.options.cbtSanityRate, r.keepLast, r.keepDaily, r.keepWeekly, r.keepMonthly, r.keepYearly, r.immutableDays];
      if (nums.some((n) => !Number.isFinite(n) || n < 0)) return 'Every number must be filled in and not negative.';
      if (r.keepLast < 1) return 'Keep last must be at least 1.';
      if (s.options.cbtSanityRate > 1) return 'The CBT sanity check is at most 100%.';
      const { retries, window } = s.options;
      if (!Number.isInteger(retries.count) || retries.count < 0 || retries.count > 5) return 'Automatic retries: 0 to 5 times.';
      if (!Number.isInteger(retries.delayMinutes) || retries.delayMinutes < 1 || retries.delayMinutes > 1440) return 'Automatic retries: 1 to 1440 minutes apart.';
      if (window && (!window.start || !window.end)) return 'Give the backup window a start and an end time.';
      if (window && window.start === window.end) return 'A backup window must not start and end at the same time.';
      return null;
    }
    default:
      return s.name.trim() ? null : 'Give the job a name.';
  }
}

/** The fields of the edited state that differ from the job as stored. */
function changes(job: Job, s: WizardState): JobUpdate {
  const out: JobUpdate = {};
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (s.name.trim() !== job.name) out.name = s.name.trim();
  if (s.enabled !== job.enabled) out.enabled = s.enabled;
  if (s.vcenterId !== job.vcenterId) out.vcenterId = s.vcenterId;
  if (s.repositoryId !== job.repositoryId) out.repositoryId = s.repositoryId;
  if (!same(s.sources, job.sources)) out.sources = s.sources;
  if (s.transportMode !== job.transportMode) out.transportMode = s.transportMode;
  if (!same(s.options, job.options)) out.options = s.options;
  const cron = toCron(s.schedule);
  if (cron !== job.schedule) out.schedule = cron;
  return out;
}

function Wizard({ job, vcenters, repositories }: { job: Job | null; vcenters: VCenter[]; repositories: RepositoryDto[] }) {
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [state, setState] = useState<WizardState>(() => {
    const s = job ? stateFromJob(job) : emptyState();
    return { ...s, vcenterId: s.vcenterId || vcenters[0]?.id || '', repositoryId: s.repositoryId || repositories[0]?.id || '' };
  });
  const [step, setStep] = useState(0);
  const [reached, setReached] = useState(job ? STEPS.length - 1 : 0);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // Keeping fewer restore points, or shortening how long they stay undeletable, needs the user's password again.
  const [currentPassword, setCurrentPassword] = useState('');
  const lowered = job !== null ? retentionLowered(job.options.retention, state.options.retention) : [];
  const heading = useRef<HTMLHeadingElement>(null);
  const first = useRef(true);
  const set = (patch: Partial<WizardState>) => {
    setState((s) => ({ ...s, ...patch }));
    setError(null);
  };

  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    heading.current?.focus();
  }, [step]);

  const go = async (to: number) => {
    if (to > step) {
      setBusy(true);
      for (let i = step; i < to; i++) {
        const problem = await stepProblem(i, state);
        if (problem) {
          setBusy(false);
          setStep(i);
          setError(problem);
          return;
        }
      }
      setBusy(false);
    }
    if (STEPS[to] === 'Review' && !state.name.trim()) set({ name: suggestName(state.sources) });
    setError(null);
    setStep(to);
    setReached((r) => Math.max(r, to));
  };

  const submit = async (runNow: boolean) => {
    setBusy(true);
    setError(null);
    try {
      for (let i = 0; i < STEPS.length; i++) {
        const problem = await stepProblem(i, state);
        if (problem) {
          setStep(i);
          setError(problem);
          return;
        }
      }
      let saved: Job;
      if (job) {
        const diff = changes(job, state);
        saved = Object.keys(diff).length > 0 ? await updateJob(job.id, lowered.length > 0 ? { ...diff, currentPassword } : diff) : job;
      } else {
        saved = await createJob({
          name: state.name.trim(),
          vcenterId: state.vcenterId,
          repositoryId: state.repositoryId,
          sources: state.sources,
          transportMode: state.transportMode,
          options: state.options,
          schedule: toCron(state.schedule),
          enabled: state.enabled,
        });
      }
      await qc.invalidateQueries({ queryKey: ['jobs'] });
      if (runNow) {
        const run = await runJob(saved.id);
        await qc.invalidateQueries({ queryKey: ['runs'] });
        void navigate(paths.run(run.id));
      } else {
        void navigate(paths.jobs, { state: { flash: `Job ${saved.name} ${job ? 'saved' : 'created'}.` } });
      }
    } catch (err) {
      const field = err instanceof ApiRequestError ? err.body.details?.[0]?.path.split('.')[0] : undefined;
      if (field !== undefined && STEP_OF_FIELD[field] !== undefined) setStep(STEP_OF_FIELD[field]);
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  const current = STEPS[step]!;
  const last = step === STEPS.length - 1;
  return (
    <div className="wizard card">
      <ol className="steps" aria-label="Steps">
        {STEPS.map((label, i) => (
          <li key={label} className={i === step ? 'current' : i <= reached ? 'done' : ''}>
            <button type="button" aria-current={i === step ? 'step' : undefined} disabled={i > reached || busy} onClick={() => void go(i)}>
              <span className="step-no" aria-hidden="true">
                {i + 1}
              </span>{' '}
              {label}
            </button>
          </li>
        ))}
      </ol>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (last) void submit(false);
          else void go(step + 1);
        }}
      >
        <h3 tabIndex={-1} ref={heading} className="step-title">
          Step {step + 1} of {STEPS.length}: {current === 'Review' ? 'Review and save' : current}
        </h3>
        {current === 'Sources' && <SourcesStep state={state} set={set} vcenters={vcenters} />}
        {current === 'Destination' && <DestinationStep state={state} set={set} repositories={repositories} />}
        {current === 'Schedule' && <ScheduleStep state={state} set={set} />}
        {current === 'Options' && <OptionsStep state={state} set={set} />}
        {current === 'Review' && <ReviewStep state={state} set={set} vcenters={vcenters} repositories={repositories} />}
        {current === 'Review' && lowered.length > 0 && (
          <label>
            Retention goes down ({lowered.map((l) => `${RETENTION_LABELS[l.field]} ${l.from} → ${l.to}`).join(', ')}): restore points will be deleted sooner. Confirm with your password
            <input type="password" name="currentPassword" autoComplete="current-password" value={currentPassword} onChange={(e) => setCurrentPassword(e.target.value)} required />
          </label>
        )}
        <FormError message={error} />
        <div className="wizard-actions">
          <button type="button" onClick={() => void navigate(paths.jobs)} className="link">
            Cancel
          </button>
          <span className="grow" />
          {step > 0 && (
            <button type="button" onClick={() => void go(step - 1)} disabled={busy}>
              Back
            </button>
          )}
          {last ? (
            <>
              <button type="button" onClick={() => void submit(true)} disabled={busy}>
                {job ? 'Save and run now' : 'Create and run now'}
              </button>
              <button type="submit" className="primary" disabled={busy}>
                {busy ? 'Saving…' : job ? 'Save changes' : 'Create job'}
              </button>
            </>
          ) : (
            <button type="submit" className="primary" disabled={busy}>
              {busy ? 'Checking…' : 'Next'}
            </button>
          )}
        </div>
      </form>
    </div>
  );
}

const RETENTION_LABELS: Record<keyof Retention, string> = { keepLast: 'keep last', keepDaily: 'daily', keepWeekly: 'weekly', keepMonthly: 'monthly', keepYearly: 'yearly', immutableDays: 'immutable days' };

export default function JobWizardPage() {
  const { id } = useParams();
  const me = useMe();
  const job = useJob(id);
  const vcenters = useVCenters();
  const repositories = useRepositories();
  const title = id ? `Edit ${job.data?.name ?? 'job'}` : 'New backup job';
  if (!can(me.role, 'operator')) {
    return (
      <Page title={title}>
        <NotAllowed role="operator" />
      </Page>
    );
  }
  const failed = (id ? job.error : null) ?? vcenters.error ?? repositories.error;
  return (
    <Page title={title} subtitle="Sources → destination → schedule → options, then review.">
      {failed ? (
        <LoadError what="what the wizard needs" error={failed} />
      ) : (id && !job.data) || !vcenters.data || !repositories.data ? (
        <Loading what="the inventory" />
      ) : vcenters.data.length === 0 ? (
        <p className="muted">Register a vCenter first (vCenters page): the wizard picks VMs from its inventory.</p>
      ) : (
        <Wizard job={job.data ?? null} vcenters={vcenters.data} repositories={repositories.data} />
      )}
    </Page>
  );
}
