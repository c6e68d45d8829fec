import type { Retention } from '@vaultline/contracts';

const RULES: { key: keyof Retention; label: string; min: number }[] = [
  { key: 'keepLast', label: 'Keep last', min: 1 },
  { key: 'keepDaily', label: 'Daily', min: 0 },
  { key: 'keepWeekly', label: 'Weekly', min: 0 },
  { key: 'keepMonthly', label: 'Monthly', min: 0 },
  { key: 'keepYearly', label: 'Yearly', min: 0 },
];

/** A labelled number input, with an optional unit after it and a help line under it. */
export function NumberField({ label, value, min, max, step, onChange, suffix, help }: { label: string; value: number; min: number; max: number; step?: number; onChange: (n: number) => void; suffix?: string; help?: string }) {
  return (
    <label className="number-field">
      {label}
      <span className="with-suffix">
        <input type="number" value={Number.isFinite(value) ? value : ''} min={min} max={max} step={step ?? 1} required onChange={(e) => onChange(e.target.valueAsNumber)} />
        {suffix && <span className="muted">{suffix}</span>}
      </span>
      {help && <span className="muted small">{help}</span>}
    </label>
  );
}

/** The GFS retention rules (keep last, daily, weekly, monthly, yearly) and the immutability days, as one grid. */
export function RetentionFields({ value, onChange }: { value: Retention; onChange: (patch: Partial<Retention>) => void }) {
  return (
    <div className="retention">
      {RULES.map((r) => (
        <NumberField key={r.key} label={r.label} value={value[r.key]} min={r.min} max={10_000} onChange={(n) => onChange({ [r.key]: n })} />
      ))}
      <NumberField label="Immutable for" value={value.immutableDays} min={0} max={3650} suffix="days" onChange={(n) => onChange({ immutableDays: n })} />
    </div>
  );
}
