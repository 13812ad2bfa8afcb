// Standard 5-field cron (minute hour day-of-month month day-of-week), evaluated in UTC, as the
// schedule trigger of a Container Apps job takes it: `*`, lists, ranges, steps (`*/15`, `1-30/5`)
// and the month and weekday names (JAN, MON). No npm cron library is in the repository's
// dependencies, and the sandbox needs only this much, hence our own.

export interface CronSchedule {
  expression: string;
  minutes: Set<number>;
  hours: Set<number>;
  days: Set<number>;
  months: Set<number>;
  /** 0 = Sunday … 6 = Saturday (7 is read as Sunday). */
  weekdays: Set<number>;
  /** Whether day-of-month / day-of-week were `*`: when both are restricted, either one matching is enough (cron's rule). */
  anyDay: boolean;
  anyWeekday: boolean;
}

const MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

interface FieldSpec {
  label: string;
  min: number;
  max: number;
  names?: string[];
  /** Value of names[0] (months start at 1). */
  nameBase?: number;
}

const FIELDS: FieldSpec[] = [
  { label: "minute", min: 0, max: 59 },
  { label: "hour", min: 0, max: 23 },
  { label: "day of month", min: 1, max: 31 },
  { label: "month", min: 1, max: 12, names: MONTH_NAMES, nameBase: 1 },
  { label: "day of week", min: 0, max: 7, names: DAY_NAMES, nameBase: 0 },
];

function _value(text: string, f: FieldSpec, expr: string): number {
  const named = f.names?.indexOf(text.toUpperCase()) ?? -1;
  if (named >= 0) return named + (f.nameBase ?? 0);
  if (!/^\d+$/.test(text)) throw new RangeError(`Cannot parse cron expression '${expr}': '${text}' is not a number in the ${f.label} field`);
  const n = Number(text);
  if (n < f.min || n > f.max) throw new RangeError(`Cannot parse cron expression '${expr}': ${n} is outside ${f.min}-${f.max} in the ${f.label} field`);
  return n;
}

function _field(text: string, f: FieldSpec, expr: string): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(",")) {
    if (!part) throw new RangeError(`Cannot parse cron expression '${expr}': an empty list item in the ${f.label} field`);
    const [range, stepText, extra] = part.split("/");
    if (extra !== undefined) throw new RangeError(`Cannot parse cron expression '${expr}': '${part}' has more than one step`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) throw new RangeError(`Cannot parse cron expression '${expr}': the step '${stepText}' in the ${f.label} field must be a positive number`);
      step = Number(stepText);
    }
    let lo: number, hi: number;
    if (range === "*") {
      [lo, hi] = [f.min, f.max];
    } else if (range.includes("-")) {
      const [a, b, more] = range.split("-");
      if (more !== undefined || !a || !b) throw new RangeError(`Cannot parse cron expression '${expr}': '${range}' is not a range in the ${f.label} field`);
      [lo, hi] = [_value(a, f, expr), _value(b, f, expr)];
      if (lo > hi) throw new RangeError(`Cannot parse cron expression '${expr}': the range '${range}' in the ${f.label} field runs backwards`);
    } else {
      lo = _value(range, f, expr);
      // `5/15` means from 5 to the end in steps of 15.
      hi = stepText === undefined ? lo : f.max;
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/**
 * Parses a 5-field cron expression; a bad one throws RangeError naming the field.
 * @example parseCron("7 * * * *") // every hour at minute 7
 */
export function parseCron(expression: string): CronSchedule {
  if (typeof expression !== "string") throw new TypeError("Cannot parse cron expression: it must be a string");
  const parts = expression.trim().split(/\s+/).filter(Boolean);
  if (parts.length !== 5) {
    throw new RangeError(`Cannot parse cron expression '${expression}': expected 5 fields (minute hour day month weekday), got ${parts.length}`);
  }
  const [minutes, hours, days, months, weekdays] = parts.map((p, i) => _field(p, FIELDS[i], expression));
  if (weekdays.delete(7)) weekdays.add(0);
  return { expression, minutes, hours, days, months, weekdays, anyDay: parts[2] === "*", anyWeekday: parts[4] === "*" };
}

function _dayMatches(s: CronSchedule, d: Date): boolean {
  const dom = s.days.has(d.getUTCDate());
  const dow = s.weekdays.has(d.getUTCDay());
  if (s.anyDay && s.anyWeekday) return true;
  if (s.anyDay) return dow;
  if (s.anyWeekday) return dom;
  return dom || dow;
}

/** Whether the UTC minute holding `ms` is an instant of the schedule. */
export function cronMatches(s: CronSchedule, ms: number): boolean {
  const d = new Date(ms);
  return s.months.has(d.getUTCMonth() + 1) && _dayMatches(s, d) && s.hours.has(d.getUTCHours()) && s.minutes.has(d.getUTCMinutes());
}

const MINUTE_MS = 60_000;

/**
 * The latest instant of the schedule in (afterMs, uptoMs], or undefined: walks back from uptoMs,
 * skipping whole months, days and hours that cannot match, so a jump of years costs little.
 */
export function latestCronInstant(s: CronSchedule, afterMs: number, uptoMs: number): number | undefined {
  let t = Math.floor(uptoMs / MINUTE_MS) * MINUTE_MS;
  while (t > afterMs) {
    const d = new Date(t);
    const [y, mo, day, h] = [d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours()];
    if (!s.months.has(mo + 1)) t = Date.UTC(y, mo, 1) - MINUTE_MS;
    else if (!_dayMatches(s, d)) t = Date.UTC(y, mo, day) - MINUTE_MS;
    else if (!s.hours.has(h)) t = Date.UTC(y, mo, day, h) - MINUTE_MS;
    else if (!s.minutes.has(d.getUTCMinutes())) t -= MINUTE_MS;
    else return t;
  }
  return undefined;
}
