import { useEffect, useRef, useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import type { RepositoryRestorePoint, VCenter } from '@vaultline/contracts';
import { startRestore, useRestorePoint, useVmRestorePoints } from '../../api/restores.ts';
import { useVCenters } from '../../api/vcenters.ts';
import { FormError } from '../../components/FormError.tsx';
import { LoadError, Loading, NotAllowed, Page } from '../../components/Page.tsx';
import { paths } from '../../config/paths.ts';
import { ApiRequestError, errorMessage } from '../../lib/api.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { DetailsStep } from './DetailsStep.tsx';
import { DownloadStep } from './DownloadStep.tsx';
import { PointStep } from './PointStep.tsx';
import { ReviewStep } from './ReviewStep.tsx';
import { WhatStep } from './WhatStep.tsx';
import { defaultName, initialState, requestOf, stepProblem, stepsFor, type RestoreState, type RestoreWhat } from './state.ts';

/** Which step fixes a field the Director complained about. */
const STEP_OF_FIELD: Record<string, string> = { restorePointId: 'Restore point', kvm: 'Details', name: 'Details', replace: 'Details', vcenterId: 'Details', transport: 'Details', networkMap: 'Details', disk: 'Details', datastore: 'Details' };

function Wizard({ points, initialPoint, vcenters }: { points: RepositoryRestorePoint[]; initialPoint: string; vcenters: VCenter[] }) {
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [state, setState] = useState<RestoreState>(() => ({ ...initialState(undefined, vcenters[0]?.id ?? ''), pointId: initialPoint }));
  const [step, setStep] = useState(0);
  const [reached, setReached] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const detail = useRestorePoint(state.pointId || undefined);
  const point = detail.data?.id === state.pointId ? detail.data : undefined;
  const defaultsFor = useRef<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const first = useRef(true);
  const steps = stepsFor(state.what);
  const current = steps[step]!;
  const set = (patch: Partial<RestoreState>) => {
    setState((s) => ({ ...s, ...patch }));
    setError(null);
  };

  // A newly chosen restore point brings its own defaults: its vCenter, names, first disk.
  useEffect(() => {
    if (!point || defaultsFor.current === point.id) return;
    defaultsFor.current = point.id;
    setState((s) => {
      const base = initialState(point, s.vcenterId || vcenters[0]?.id || '');
      const what = point.hardware === null && ['new', 'replace', 'drill'].includes(s.what) ? 'disk' : s.what;
      return { ...s, vcenterId: base.vcenterId, what, name: defaultName(what, point.vmName), confirm: '', diskKey: base.diskKey, networkMap: {}, kvmFolder: base.kvmFolder, kvmNetworks: {} };
    });
  }, [point, vcenters]);

  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    heading.current?.focus();
  }, [step]);

  const chooseWhat = (what: RestoreWhat) => set({ what, name: point ? defaultName(what, point.vmName) : state.name, confirm: '' });

  const go = (to: number) => {
    if (to > step) {
      for (let i = step; i < to; i++) {
        const problem = stepProblem(steps[i]!, state, point);
        if (problem) {
          setStep(i);
          setError(problem);
          return;
        }
      }
    }
    setError(null);
    setStep(to);
    setReached((r) => Math.max(r, to));
  };

  const submit = async () => {
    for (let i = 0; i < steps.length; i++) {
      const problem = stepProblem(steps[i]!, state, point);
      if (problem) {
        setStep(i);
        setError(problem);
        return;
      }
    }
    setBusy(true);
    setError(null);
    try {
      const { runId } = await startRestore(requestOf(state));
      await qc.invalidateQueries({ queryKey: ['runs'] });
      void navigate(paths.run(runId));
    } catch (err) {
      const field = err instanceof ApiRequestError ? err.body.details?.[0]?.path.split('.')[0] : undefined;
      const to = field !== undefined ? steps.indexOf(STEP_OF_FIELD[field] ?? '') : -1;
      if (to >= 0) setStep(to);
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  const last = step === steps.length - 1;
  const waiting = step > 0 && !point;
  return (
    <div className="wizard card">
      <ol className="steps" aria-label="Steps">
        {steps.map((label, i) => (
          <li key={label} className={i === step ? 'current' : i <= reached ? 'done' : ''}>
            <button type="button" aria-current={i === step ? 'step' : undefined} disabled={i > reached || busy} onClick={() => go(i)}>
              <span className="step-no" aria-hidden="true">
                {i + 1}
              </span>{' '}
              {label}
            </button>
          </li>
        ))}
      </ol>
      <form
        aria-label="Restore"
        onSubmit={(e) => {
          e.preventDefault();
          if (last) {
            if (current === 'Review') void submit();
          } else go(step + 1);
        }}
      >
        <h3 tabIndex={-1} ref={heading} className="step-title">
          Step {step + 1} of {steps.length}: {current === 'Review' ? 'Review and start' : current}
        </h3>
        {current === 'Restore point' && (
          <PointStep
            points={points}
            chosen={state.pointId}
            choose={(p) => {
              set({ pointId: p.id });
            }}
          />
        )}
        {point?.damaged && (
          <div className="alert error" role="alert">
            A verify found this restore point damaged: {point.damage ?? 'a chunk is missing or does not match'}. A restore from it fails when it reaches the damage; choose another point if there is one.
          </div>
        )}
        {detail.isError && detail.data === undefined && <LoadError what="the restore point" error={detail.error} />}
        {waiting && !detail.isError && <Loading what="the restore point" />}
        {point && current === 'What' && <WhatStep state={state} point={point} choose={chooseWhat} />}
        {point && current === 'Details' && <DetailsStep state={state} set={set} point={point} vcenters={vcenters} />}
        {point && current === 'Review' && <ReviewStep state={state} point={point} vcenters={vcenters} />}
        {point && current === 'Download' && <DownloadStep point={point} />}
        <FormError message={error} />
        <div className="wizard-actions">
          <button type="button" onClick={() => void navigate(-1)} className="link">
            Cancel
          </button>
          <span className="grow" />
          {step > 0 && (
            <button type="button" onClick={() => go(step - 1)} disabled={busy}>
              Back
            </button>
          )}
          {!last && (
            <button type="submit" className="primary" disabled={busy || (step > 0 && !point)}>
              Next
            </button>
          )}
          {last && current === 'Review' && (
            <button type="submit" className="primary" disabled={busy || !point}>
              {busy ? 'Starting…' : state.what === 'drill' ? 'Start the drill' : state.what === 'replace' ? `Restore and replace ${state.name.trim()}` : 'Start the restore'}
            </button>
          )}
        </div>
      </form>
    </div>
  );
}

/** /restore?point=<id> (from a restore point) or /restore?vm=<instance UUID or name> (from the inventory). */
export default function RestoreWizardPage() {
  const me = useMe();
  const [params] = useSearchParams();
  const pointParam = params.get('point') ?? undefined;
  const vmParam = params.get('vm') ?? undefined;
  const fromPoint = useRestorePoint(pointParam);
  const vm = vmParam ?? fromPoint.data?.vmInstanceUuid;
  const points = useVmRestorePoints(vm);
  const vcenters = useVCenters();
  const title = points.data?.[0] ? `Restore ${points.data[0].vmName}` : 'Restore';
  if (!can(me.role, 'operator')) {
    return (
      <Page title={title}>
        <NotAllowed role="operator" />
      </Page>
    );
  }
  const failed = (pointParam ? fromPoint.error : null) ?? points.error ?? vcenters.error;
  return (
    <Page title={title} subtitle="Restore point → what → where and how → review. Every restored disk is read back and compared with the restore point.">
      {!pointParam && !vmParam ? (
        <p className="muted">
          Start from a restore point (<Link to={paths.repositories}>Repositories</Link>) or from a VM on the <Link to={paths.overview}>overview</Link>.
        </p>
      ) : failed ? (
        <LoadError what="the restore points" error={failed} />
      ) : !points.data || !vcenters.data ? (
        <Loading what="the restore points" />
      ) : points.data.length === 0 ? (
        <p className="muted">This VM has no restore point yet: back it up first.</p>
      ) : (
        <Wizard points={points.data} initialPoint={pointParam ?? points.data[0]!.id} vcenters={vcenters.data} />
      )}
    </Page>
  );
}
