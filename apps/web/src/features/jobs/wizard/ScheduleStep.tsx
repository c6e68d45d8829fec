import { useEffect, useState } from 'react';
import { useSchedulePreview } from '../../../api/jobs.ts';
import { formatDateTime } from '../../../lib/format.ts';
import { DAYS, MONTH_DAYS_MAX, toCron, WEEK, type ScheduleChoice } from '../schedule.ts';
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

/** None, daily, weekly (on any set of days), monthly or a cron expression, with the Director's preview of the next runs. */
export function ScheduleChooser({ value: s, onChange: choose, noneHelp = 'Run it by hand from the job list.', whenNone }: { value: ScheduleChoice; onChange: (c: ScheduleChoice) => void; noneHelp?: string; whenNone?: string }) {
  const time = s.kind === 'daily' || s.kind === 'weekly' || s.kind === 'monthly' ? s.time : '22:00';
  const days = s.kind === 'weekly' ? s.days : [1];
  const monthDay = s.kind === 'monthly' ? s.day : 1;
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
          <input type="radio" name="schedule" checked={s.kind === 'weekly'} onChange={() => choose({ kind: 'weekly', days, time })} />
          <span className="choice-text">
            <strong>Weekly</strong> <span className="muted small block">Any days of the week you tick.</span>
          </span>
        </label>
        {s.kind === 'weekly' && (
          <div className="nested row-inline">
            {/* The last day left cannot be unticked: a weekly schedule without a day would never run. */}
            <div role="group" aria-label="Weekly on" className="row-inline" style={{ alignItems: 'center' }}>
              on
              {WEEK.map((d) => {
                const on = s.days.includes(d);
                return (
                  <label key={d} className="inline">
                    <input
                      type="checkbox"
                      checked={on}
                      disabled={on && s.days.length === 1}
                      onChange={() => choose({ kind: 'weekly', days: on ? s.days.filter((x) => x !== d) : [...s.days, d], time: s.time })}
                      aria-label={DAYS[d]}
                    />
                    {DAYS[d].slice(0, 3)}
                  </label>
                );
              })}
            </div>
            <label className="inline">
              at
              <input type="time" value={s.time} required onChange={(e) => choose({ kind: 'weekly', days: s.days, time: e.target.value })} aria-label="Weekly at" />
            </label>
          </div>
        )}
        <label className={`choice ${s.kind === 'monthly' ? 'chosen' : ''}`}>
          <input type="radio" name="schedule" checked={s.kind === 'monthly'} onChange={() => choose({ kind: 'monthly', day: monthDay, time })} />
          <span className="choice-text">
            <strong>Monthly</strong> <span className="muted small block">A day of the month (1–{MONTH_DAYS_MAX}, which every month has) or its last day.</span>
          </span>
        </label>
        {s.kind === 'monthly' && (
          <div className="nested row-inline">
            <label className="inline">
              on
              <select value={String(s.day)} onChange={(e) => choose({ kind: 'monthly', day: e.target.value === 'last' ? 'last' : Number(e.target.value), time: s.time })} aria-label="Monthly on">
                {Array.from({ length: MONTH_DAYS_MAX }, (_, i) => (
                  <option key={i + 1} value={i + 1}>
                    day {i + 1}
                  </option>
                ))}
                <option value="last">the last day</option>
              </select>
            </label>
            <label className="inline">
              at
              <input type="time" value={s.time} required onChange={(e) => choose({ kind: 'monthly', day: s.day, time: e.target.value })} aria-label="Monthly at" />
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
