/** Schedules as the wizard offers them (presets or a cron expression) and as the job list names them. */

export type ScheduleChoice =
  | { kind: 'none' }
  | { kind: 'daily'; time: string }
  | { kind: 'weekly'; day: number; time: string }
  | { kind: 'cron'; expr: string };

export const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;

const pad = (n: number) => String(n).padStart(2, '0');

function minuteHour(time: string): [number, number] {
  const [h, m] = time.split(':').map(Number);
  return [m ?? 0, h ?? 0];
}

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
      return `${m} ${h} * * ${c.day}`;
    }
    case 'cron':
      return c.expr.trim();
  }
}

const DAILY = /^(\d{1,2}) (\d{1,2}) \* \* \*$/;
const WEEKLY = /^(\d{1,2}) (\d{1,2}) \* \* ([0-6])$/;

/** The preset a stored expression matches, or the expression itself. */
export function fromCron(expr: string | null): ScheduleChoice {
  if (!expr) return { kind: 'none' };
  const d = DAILY.exec(expr);
  if (d && Number(d[1]) < 60 && Number(d[2]) < 24) return { kind: 'daily', time: `${pad(Number(d[2]))}:${pad(Number(d[1]))}` };
  const w = WEEKLY.exec(expr);
  if (w && Number(w[1]) < 60 && Number(w[2]) < 24) return { kind: 'weekly', day: Number(w[3]), time: `${pad(Number(w[2]))}:${pad(Number(w[1]))}` };
  return { kind: 'cron', expr };
}

export function describeSchedule(expr: string | null): string {
  const c = fromCron(expr);
  switch (c.kind) {
    case 'none':
      return 'On demand';
    case 'daily':
      return `Daily at ${c.time}`;
    case 'weekly':
      return `${DAYS[c.day]}s at ${c.time}`;
    case 'cron':
      return `cron ${c.expr}`;
  }
}
