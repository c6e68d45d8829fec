/**
 * Job schedules as the API accepts them: five-field cron expressions (minute
 * hour day-of-month month day-of-week) read in the appliance's time zone.
 * cron-parser alone also takes 3, 4 or 6 fields (seconds), which the 20-second
 * scheduler tick cannot honour, so those are refused here with the reason.
 * A day-of-month of `L` is the last day of each month (cron-parser reads it both
 * ways, leap years included): the console's "monthly on the last day" writes it.
 */
import cronParser from 'cron-parser';

/** The latest occurrence at or before `now`, or null (a bad expression). */
export function previousOccurrence(schedule: string, now: Date): Date | null {
  try {
    return cronParser.parseExpression(schedule, { currentDate: new Date(now.getTime() + 1) }).prev().toDate();
  } catch {
    return null;
  }
}

/** Why cron-parser refuses an expression (any field count), or null. */
export function cronProblem(schedule: string): string | null {
  try {
    cronParser.parseExpression(schedule);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

export function scheduleProblem(schedule: string): string | null {
  const fields = schedule.trim().split(/\s+/).length;
  if (fields !== 5) return `a cron expression has 5 fields (minute hour day-of-month month day-of-week); this one has ${fields}`;
  return cronProblem(schedule);
}

/** The next `count` occurrences after `now` of a valid expression. */
export function nextOccurrences(schedule: string, count: number, now = new Date()): Date[] {
  const it = cronParser.parseExpression(schedule, { currentDate: now });
  const out: Date[] = [];
  for (let i = 0; i < count; i++) out.push(it.next().toDate());
  return out;
}

export function applianceTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}
