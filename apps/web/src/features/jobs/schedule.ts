/** Schedules as the wizard offers them (presets or a cron expression) and as the job list names them. */

export type ScheduleChoice =
  | { kind: 'none' }
  | { kind: 'daily'; time: string }
  /** `days`: cron day-of-week numbers (0 = Sunday … 6 = Saturday), at least one. */
  | { kind: 'weekly'; days: number[]; time: string }
  /** `day`: 1–28 (every month has it), or the last day of each month (cron's `L`, which the Director's parser reads). */
  | { kind: 'monthly'; day: number | 'last'; time: string }
  | { kind: 'cron'; expr: string };

export const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;
/** Cron day numbers in the order people read a week here: Monday first. */
export const WEEK = [1, 2, 3, 4, 5, 6, 0] as const;
/** Days 29–31 are missing from some months, whose runs cron would then skip: those are only offered as "the last day". */
export const MONTH_DAYS_MAX = 28;

const pad = (n: number) => String(n).padStart(2, '0');

function minuteHour(time: string): [number, number] {
  const [h, m] = time.split(':').map(Number);
  return [m ?? 0, h ?? 0];
}

/** Days as cron lists them: each once, ascending (Sunday first). */
const cronDays = (days: readonly number[]) => [...new Set(days)].sort((a, b) => a - b);

/** The cron expression a choice stands for; null = run on demand only. */
export function toCron(c: ScheduleChoice): string | null {
  switch (c.kind) {
    case 'none':
      return null;
    case 'daily': {
      const [m, h] = minuteHour(c.time);
      return `${m} ${h} * * *`;
    }
    case 'weekly': {
      const [m, h] = minuteHour(c.time);
      return `${m} ${h} * * ${cronDays(c.days).join(',')}`;
    }
    case 'monthly': {
      const [m, h] = minuteHour(c.time);
      return `${m} ${h} ${c.day === 'last' ? 'L' : c.day} * *`;
    }
    case 'cron':
      return c.expr.trim();
  }
}

const PRESET = /^(\d{1,2}) (\d{1,2}) (\*|L|\d{1,2}) \* (\*|[0-6](?:,[0-6])*)$/;

/** A preset's reading of `expr`, not yet checked to write `expr` back. */
function presetOf(expr: string): ScheduleChoice | null {
  const p = PRESET.exec(expr);
  if (!p) return null;
  const [minute, hour] = [Number(p[1]), Number(p[2])];
  if (minute > 59 || hour > 23) return null;
  const time = `${pad(hour)}:${pad(minute)}`;
  const [dom, dow] = [p[3]!, p[4]!];
  if (dom === '*' && dow === '*') return { kind: 'daily', time };
  if (dom === '*') return { kind: 'weekly', days: dow.split(',').map(Number), time };
  if (dow !== '*') return null;
  if (dom === 'L') return { kind: 'monthly', day: 'last', time };
  const day = Number(dom);
  return day >= 1 && day <= MONTH_DAYS_MAX ? { kind: 'monthly', day, time } : null;
}

/**
 * The preset a stored expression matches, or the expression itself. Only an expression the preset writes back
 * character for character counts (so "1-5", "05" or a day listed twice stay cron expressions): opening a job
 * and saving it unchanged never rewrites its schedule.
 */
export function fromCron(expr: string | null): ScheduleChoice {
  if (!expr) return { kind: 'none' };
  const preset = presetOf(expr);
  return preset && toCron(preset) === expr ? preset : { kind: 'cron', expr };
}

/** "Mondays, Wednesdays and Fridays", Monday first. */
export function describeDays(days: readonly number[]): string {
  const names = WEEK.filter((d) => days.includes(d)).map((d) => `${DAYS[d]}s`);
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)}` : (names[0] ?? '');
}

export function describeSchedule(expr: string | null): string {
  const c = fromCron(expr);
  switch (c.kind) {
    case 'none':
      return 'On demand';
    case 'daily':
      return `Daily at ${c.time}`;
    case 'weekly':
      return c.days.length === 7 ? `Every day of the week at ${c.time}` : `${describeDays(c.days)} at ${c.time}`;
    case 'monthly':
      return `Monthly on ${c.day === 'last' ? 'the last day' : `day ${c.day}`} at ${c.time}`;
    case 'cron':
      return `cron ${c.expr}`;
  }
}
