/**
 * Read throughput over time, one line per disk (uPlot: small, and quick with thousands of points): from the
 * samples the Transporter stored (so a reload draws the same curve), extended while the run goes on by the
 * live progress ticks of the socket.
 */
import { useEffect, useMemo, useRef, useState } from 'react';
import uPlot from 'uplot';
import { AXIS, useUPlot } from '../../components/chart/useUPlot.ts';
import type { DiskSamples, RunDetail } from '@vaultline/contracts';
import { liveKey, type LiveProgress } from '../../api/live.ts';
import { formatBytes } from '../../lib/format.ts';

const MiB = 1024 * 1024;
const COLORS = ['#58a6ff', '#56d364', '#e3b341', '#ff7b72', '#d2a8ff', '#79c0ff', '#ffa657'];

interface DiskSeries {
  id: string;
  label: string;
  /** Seconds (epoch) and cumulative bytes read. */
  at: number[];
  read: number[];
  stored: number;
}

/** MiB/s between consecutive samples, at the later one's time. */
function rates(s: DiskSeries): [number[], number[]] {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 1; i < s.at.length; i++) {
    const dt = s.at[i]! - s.at[i - 1]!;
    if (dt <= 0) continue;
    xs.push(s.at[i]!);
    ys.push(Math.max(0, s.read[i]! - s.read[i - 1]!) / dt / MiB);
  }
  return [xs, ys];
}

/** Live ticks of this run's disks, kept (after the stored samples) while the page is open. */
function useLiveTail(run: RunDetail, live: LiveProgress): Map<string, { at: number[]; read: number[] }> {
  const tail = useRef(new Map<string, { at: number[]; read: number[] }>());
  const [, setVersion] = useState(0);
  useEffect(() => {
    let changed = false;
    for (const vm of run.vms) {
      for (const d of vm.disks) {
        const p = live[liveKey(vm.id, d.deviceKey)];
        if (!p) continue;
        const t = tail.current.get(d.id) ?? { at: [], read: [] };
        if (t.read.at(-1) === p.bytesRead) continue;
        t.at.push(Date.now() / 1000);
        t.read.push(p.bytesRead);
        tail.current.set(d.id, t);
        changed = true;
      }
    }
    if (changed) setVersion((v) => v + 1);
  }, [run, live]);
  return tail.current;
}

export function ThroughputChart({ run, live }: { run: RunDetail; live: LiveProgress }) {
  const tail = useLiveTail(run, live);
  const series = useMemo<DiskSeries[]>(() => {
    const stored = new Map<string, DiskSamples>(run.samples.map((s) => [s.runDiskId, s]));
    return run.vms.flatMap((vm) =>
      vm.disks.map((d) => {
        const s = stored.get(d.id);
        const at = (s?.at ?? []).map((t) => t / 1000);
        const read = [...(s?.bytesRead ?? [])];
        const t = tail.get(d.id);
        const last = at.at(-1) ?? 0;
        t?.at.forEach((x, i) => {
          if (x > last && t.read[i]! >= (read.at(-1) ?? 0)) {
            at.push(x);
            read.push(t.read[i]!);
          }
        });
        return { id: d.id, label: run.vms.length > 1 ? `${vm.vmName} ${d.label}` : d.label, at, read, stored: s?.at.length ?? 0 };
      }),
    );
    // `tail` is a ref mutated by useLiveTail, which re-renders on each new tick: `live` stands for it here.
  }, [run, live]);
  const drawn = useMemo(() => series.filter((s) => s.at.length > 1), [series]);
  const box = useRef<HTMLDivElement>(null);
  const data = useMemo(() => (drawn.length ? uPlot.join(drawn.map((s) => rates(s) as uPlot.AlignedData)) : null), [drawn]);
  const names = drawn.map((s) => s.label).join('\n');
  // Made again when the disks drawn change.
  useUPlot(
    box,
    data,
    (width) => ({
      width,
      height: 200,
      legend: { show: drawn.length > 1 },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [AXIS, { ...AXIS, values: (_u, v) => v.map((x) => `${x.toFixed(x < 10 ? 1 : 0)} MiB/s`), size: 90 }],
      series: [{}, ...drawn.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length]!, width: 1.5, spanGaps: true, points: { show: false }, value: (_u: uPlot, v: number | null) => (v === null ? '—' : `${v.toFixed(1)} MiB/s`) }))],
    }),
    names,
  );

  const storedPoints = series.reduce((n, s) => n + s.stored, 0);
  return (
    <section className="card" aria-labelledby="throughput-title" data-testid="throughput" data-stored-points={storedPoints}>
      <h3 id="throughput-title">Throughput</h3>
      {data ? <div ref={box} className="chart" role="img" aria-label={`Read throughput over time of ${drawn.map((s) => s.label).join(', ')}`} /> : <p className="muted">No throughput measured yet.</p>}
      <ul className="sr-only" aria-label="Throughput per disk">
        {series.map((s) => {
          const [, ys] = rates(s);
          const peak = ys.length ? Math.max(...ys) : 0;
          return (
            <li key={s.id} data-testid="throughput-disk" data-points={s.at.length} data-stored-points={s.stored}>
              {s.label}: {s.at.length} samples{ys.length > 0 && `, fastest ${formatBytes(peak * MiB)}/s`}
            </li>
          );
        })}
      </ul>
    </section>
  );
}
