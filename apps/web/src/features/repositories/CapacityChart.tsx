/**
 * The repository's size over time: logical bytes (its restore points as disk images) against stored bytes
 * (what the storage holds), drawn with uPlot as the run page's throughput chart is, from the samples the
 * Transporter stores each time the size changes; with the newest figures and their dedup and compression
 * ratios. A size holds until the next sample, so the lines are steps and reach the present.
 */
import { useMemo, useRef, useState } from 'react';
import uPlot from 'uplot';
import { AXIS, useUPlot } from '../../components/chart/useUPlot.ts';
import type { RepositoryCapacity } from '@vaultline/contracts';
import { useRepositoryCapacity } from '../../api/repositories.ts';
import { LoadError, Loading } from '../../components/Page.tsx';
import { formatBytes, formatDateTime, formatRatio } from '../../lib/format.ts';

const PERIODS = [7, 30, 90, 365] as const;
const LOGICAL = '#58a6ff';
const STORED = '#56d364';
/** The hidden table lists at most this many samples, the newest. */
const LISTED = 50;

/** Seconds (epoch), logical and stored bytes; the last figures carried to now. */
function series(c: RepositoryCapacity, now: number): uPlot.AlignedData | null {
  const xs = c.samples.map((s) => Date.parse(s.at) / 1000);
  const logical: (number | null)[] = c.samples.map((s) => s.logicalBytes);
  const stored: (number | null)[] = c.samples.map((s) => s.storedBytes);
  const last = c.samples.at(-1) ?? c.current;
  if (!last) return null;
  // Nothing changed within the period: the newest figures held all along.
  if (xs.length === 0) {
    xs.push(now - c.days * 86_400);
    logical.push(last.logicalBytes);
    stored.push(last.storedBytes);
  }
  if (now > xs.at(-1)!) {
    xs.push(now);
    logical.push(last.logicalBytes);
    stored.push(last.storedBytes);
  }
  // An empty repository (0 bytes) has no place on a log scale: a gap.
  const drawable = (v: number | null) => (v && v > 0 ? v : null);
  return [xs, logical.map(drawable), stored.map(drawable)];
}

function summary(c: RepositoryCapacity): string {
  const first = c.samples[0];
  const last = c.samples.at(-1);
  const period = `the last ${c.days} days`;
  if (!first || !last) return c.current ? `No change in ${period}: ${formatBytes(c.current.logicalBytes)} logical, ${formatBytes(c.current.storedBytes)} stored.` : '';
  if (first === last) return `One change in ${period}, on ${formatDateTime(first.at)}: ${formatBytes(last.logicalBytes)} logical, ${formatBytes(last.storedBytes)} stored.`;
  return `Over ${period} (${c.samples.length} changes), logical went from ${formatBytes(first.logicalBytes)} to ${formatBytes(last.logicalBytes)} and stored from ${formatBytes(first.storedBytes)} to ${formatBytes(last.storedBytes)}.`;
}

export function CapacityChart({ repositoryId }: { repositoryId: string }) {
  const [days, setDays] = useState<number>(30);
  const capacity = useRepositoryCapacity(repositoryId, days);
  const c = capacity.data;
  const data = useMemo(() => (c ? series(c, Date.now() / 1000) : null), [c]);
  const box = useRef<HTMLDivElement>(null);
  useUPlot(box, data, (width) => {
    const d = data!;
    const step = uPlot.paths.stepped!({ align: 1 });
    const bytes = (_u: uPlot, v: number | null) => (v === null ? '—' : formatBytes(v));
    // uPlot hides points packed closer than a few pixels: a short history would show nothing.
    const few = d[0].length <= 200;
    return {
      width,
      height: 200,
      cursor: { drag: { x: false, y: false } },
      // Logical and stored sizes often differ a hundredfold (empty blocks, dedup): a log scale shows both.
      scales: {
        // At least an hour wide, a short history in the middle.
        x: { time: true, range: (_u, min, max) => (min === null || max === null ? [min, max] : [min - Math.max(0, 3600 - (max - min)) / 2, max + Math.max(0, 3600 - (max - min)) / 2]) },
        y: { distr: 3, log: 2, range: (_u, min, max) => (min === null || max === null || min <= 0 ? [min, max] : [min / 2, max * 2]) },
      },
      // A log axis hands null for the splits it leaves unlabelled.
      axes: [AXIS, { ...AXIS, values: (_u, v: (number | null)[]) => v.map((x) => (x === null ? '' : formatBytes(x))), size: 80 }],
      series: [
        {},
        { label: 'Logical', stroke: LOGICAL, width: 2, paths: step, points: { show: few, size: 7 }, value: bytes },
        { label: 'Stored', stroke: STORED, fill: 'rgba(86, 211, 100, 0.12)', width: 2, paths: step, points: { show: few, size: 7 }, value: bytes },
      ],
    };
  });

  const now = c?.current;
  return (
    <section className="card capacity" aria-labelledby="capacity-title" data-testid="capacity" data-stored-points={c?.samples.length ?? 0}>
      <div className="row">
        <h3 id="capacity-title">Capacity</h3>
        <label className="inline">
          Period
          <select value={days} onChange={(e) => setDays(Number(e.target.value))}>
            {PERIODS.map((d) => (
              <option key={d} value={d}>
                {d === 365 ? '1 year' : `${d} days`}
              </option>
            ))}
          </select>
        </label>
      </div>
      {capacity.isPending && <Loading what="the repository's capacity" />}
      {capacity.isError && <LoadError what="the repository's capacity" error={capacity.error} />}
      {c && !now && <p className="muted">No size recorded yet: the Transporter records one after each backup, retention and garbage collection.</p>}
      {c && now && (
        <>
          <dl className="capacity-figures" data-testid="capacity-figures">
            <div>
              <dt>Logical</dt>
              <dd data-testid="capacity-logical">{formatBytes(now.logicalBytes)}</dd>
            </div>
            <div>
              <dt>Stored</dt>
              <dd data-testid="capacity-stored">{formatBytes(now.storedBytes)}</dd>
            </div>
            <div>
              <dt>Dedup ratio</dt>
              <dd>
                <span data-testid="capacity-dedup">{now.dedupRatio === null ? '—' : formatRatio(now.dedupRatio)}</span> <span className="muted small">empty blocks included</span>
              </dd>
            </div>
            <div>
              <dt>Compression ratio</dt>
              <dd data-testid="capacity-compression">{now.compressionRatio === null ? '—' : formatRatio(now.compressionRatio)}</dd>
            </div>
            <div>
              <dt>Restore points</dt>
              <dd>{now.restorePoints}</dd>
            </div>
          </dl>
          <figure className="capacity-figure" aria-labelledby="capacity-caption">
            <div ref={box} className="chart" role="img" aria-label={`Logical and stored bytes of this repository over the last ${days} days`} />
            <figcaption id="capacity-caption" className="muted small">
              {summary(c)} Measured {formatDateTime(now.at)}; sizes on a log scale.
            </figcaption>
          </figure>
          {c.samples.length > 0 && (
            <table className="sr-only">
              <caption>
                Repository size at each change{c.samples.length > LISTED ? `, the newest ${LISTED} of ${c.samples.length}` : ''}
              </caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Logical</th>
                  <th scope="col">Stored</th>
                  <th scope="col">Restore points</th>
                </tr>
              </thead>
              <tbody>
                {c.samples.slice(-LISTED).map((s, i) => (
                  <tr key={i} data-testid="capacity-sample">
                    <td>{formatDateTime(s.at)}</td>
                    <td>{formatBytes(s.logicalBytes)}</td>
                    <td>{formatBytes(s.storedBytes)}</td>
                    <td>{s.restorePoints}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
