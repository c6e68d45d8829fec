import { useEffect, useState } from 'react';
import { useSchedulePreview } from '../../../api/jobs.ts';
import { formatDateTime } from '../../../lib/format.ts';
import { DAYS, toCron, type ScheduleChoice } from '../schedule.ts';
import type { WizardState } from './state.ts';

function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** The server's reading of the schedule: when it runs next, or why it is not valid. */
export function SchedulePreviewBox({ cron, whenNone = 'The job runs only when started by hand (Run now).' }: { cron: string | null; whenNone?: string }) {
  const debounced = useDebounced(cron, 350);
  const preview = useSchedulePreview(debounced);
  if (!cron) return <p className="muted small">{whenNone}</p>;
  if (preview.isError) {
    return (
      <div className="alert error" role="alert" data-testid="schedule-error">
        {preview.error.message}
      </div>
    );
  }
  if (!preview.data || debounced !== cron) return <p className="muted small">Checking the schedule…</p>;
  return (
    <div className="preview small" role="status" data-testid="schedule-preview">
      <code>{preview.data.schedule}</code> — next runs: {preview.data.next.map((n) => formatDateTime(n)).join(' · ')}
      <span className="muted block">Read in the appliance’s time zone ({preview.data.timeZone}); shown here in yours.</span>
    </div>
  );
}

export function ScheduleStep({ state, set }: { state: WizardState; set: (patch: Partial<WizardState>) => void }) {
  return (
    <div className="step-body">
      <ScheduleChooser value={state.schedule} onChange={(schedule) => set({ schedule })} />
    </div>
  );
}

/** None, daily, weekly or a cron expression, with the Director's preview of the next runs. */
export function ScheduleChooser({ value: s, onChange: choose, noneHelp = 'Run it by hand from the job list.', whenNone }: { value: ScheduleChoice; onChange: (c: ScheduleChoice) => void; noneHelp?: string; whenNone?: string }) {
  const time = s.kind === 'daily' || s.kind === 'weekly' ? s.time : '22:00';
  const day = s.kind === 'weekly' ? s.day : 1;
  return (
    <>
      <fieldset className="choices">
        <legend>When it runs</legend>
        <label className={`choice ${s.kind === 'none' ? 'chosen' : ''}`}>
          <input type="radio" name="schedule" checked={s.kind === 'none'} onChange={() => choose({ kind: 'none' })} />
          <span className="choice-text">
            <strong>No schedule</strong> <span className="muted small block">{noneHelp}</span>
          </span>
        </label>
        <label className={`choice ${s.kind === 'daily' ? 'chosen' : ''}`}>
          <input type="radio" name="schedule" checked={s.kind === 'daily'} onChange={() => choose({ kind: 'daily', time })} />
          <span className="choice-text">
            <strong>Daily</strong>
          </span>
        </label>
        {s.kind === 'daily' && (
          <label className="inline nested">
            at
            <input type="time" value={s.time} required onChange={(e) => choose({ kind: 'daily', time: e.target.value })} aria-label="Daily at" />
          </label>
        )}
        <label className={`choice ${s.kind === 'weekly' ? 'chosen' : ''}`}>
          <input type="radio" name="schedule" checked={s.kind === 'weekly'} onChange={() => choose({ kind: 'weekly', day, time })} />
          <span className="choice-text">
            <strong>Weekly</strong>
          </span>
        </label>
        {s.kind === 'weekly' && (
          <div className="nested row-inline">
            <label className="inline">
              on
              <select value={s.day} onChange={(e) => choose({ kind: 'weekly', day: Number(e.target.value), time: s.time })} aria-label="Weekly on">
                {DAYS.map((d, i) => (
                  <option key={d} value={i}>
                    {d}
                  </option>
                ))}
              </select>
            </label>
            <label className="inline">
              at
              <input type="time" value={s.time} required onChange={(e) => choose({ kind: 'weekly', day: s.day, time: e.target.value })} aria-label="Weekly at" />
            </label>
          </div>
        )}
        <label className={`choice ${s.kind === 'cron' ? 'chosen' : ''}`}>
          <input type="radio" name="schedule" checked={s.kind === 'cron'} onChange={() => choose({ kind: 'cron', expr: toCron(s) ?? '0 22 * * 1-5' })} />
          <span className="choice-text">
            <strong>Cron expression</strong> <span className="muted small block">Five fields: minute hour day-of-month month day-of-week, e.g. 30 21 * * 1-5.</span>
          </span>
        </label>
        {s.kind === 'cron' && (
          <label className="nested">
            Cron expression
            <input className="mono" value={s.expr} onChange={(e) => choose({ kind: 'cron', expr: e.target.value })} spellCheck={false} autoComplete="off" />
          </label>
        )}
      </fieldset>
      <SchedulePreviewBox cron={toCron(s)} {...(whenNone ? { whenNone } : {})} />
    </>
  );
}
