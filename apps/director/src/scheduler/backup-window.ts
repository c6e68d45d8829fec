/**
 * Backup windows (a job's `options.window`): the hours of the day, on the appliance's wall clock, in which
 * the job's scheduled runs may start. The window runs from `start` up to, not including, `end`; an `end`
 * before the start spans midnight (20:00–06:00 is the night). Only minutes count, as in cron: a run due at
 * 05:59 is inside 20:00–06:00, one at 06:00 is not. The scheduler uses these to skip runs due outside a
 * window and to end, when it closes, the VMs its runs have not started.
 */
export interface BackupWindow {
  /** "HH:MM", 24-hour. */
  start: string;
  end: string;
}

const minutesOf = (hhmm: string): number => {
  const [h, m] = hhmm.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
};

const clocks = new Map<string, Intl.DateTimeFormat>();

/** The minute of the day (0–1439) that `at` shows on a wall clock in `timeZone` (an IANA name). */
export function minuteOfDay(at: Date, timeZone: string): number {
  let clock = clocks.get(timeZone);
  if (!clock) {
    clock = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    clocks.set(timeZone, clock);
  }
  const parts = clock.formatToParts(at);
  const part = (type: 'hour' | 'minute') => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return part('hour') * 60 + part('minute');
}

/** "HH:MM" of `at` on a wall clock in `timeZone`. */
export function clockTime(at: Date, timeZone: string): string {
  const t = minuteOfDay(at, timeZone);
  return `${String(Math.floor(t / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}`;
}

/** Whether `at` falls inside `window` on the wall clock of `timeZone`. */
export function insideWindow(window: BackupWindow, at: Date, timeZone: string): boolean {
  const t = minuteOfDay(at, timeZone);
  const start = minutesOf(window.start);
  const end = minutesOf(window.end);
  return start < end ? t >= start && t < end : t >= start || t < end;
}

/** "20:00–06:00", as the console writes a window. */
export const windowLabel = (window: BackupWindow): string => `${window.start}–${window.end}`;

/**
 * Why a scheduled run due at `due` is not started `now`, or null when it may start: its time is outside the
 * window, or (the appliance was down, or busy, when it was due) the window has closed since.
 */
export function windowSkipReason(window: BackupWindow, due: Date, now: Date, timeZone: string): string | null {
  const skipped = `skipped: outside the backup window ${windowLabel(window)}`;
  if (!insideWindow(window, due, timeZone)) return skipped;
  if (!insideWindow(window, now, timeZone)) return `${skipped} (it was due at ${clockTime(due, timeZone)}, but could only start at ${clockTime(now, timeZone)})`;
  return null;
}

/** What a VM that a run had not started when its window closed ends with. */
export const notStartedInWindow = (window: BackupWindow): string => `not started within the backup window ${windowLabel(window)}; the next run backs it up`;
