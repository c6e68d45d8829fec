/**
 * A uPlot chart (small, and quick with thousands of points) drawn into a box: made once there is data to
 * draw (and again when `rebuild` changes: other series, other scales), as wide as its box and following it
 * when the window changes, fed new data through setData without being made again.
 */
import { useEffect, useRef, type RefObject } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** Axis colours shared by the console's charts (its dark theme). */
export const AXIS = { stroke: '#8b949e', grid: { stroke: 'rgba(139, 148, 158, 0.12)' }, ticks: { stroke: 'rgba(139, 148, 158, 0.2)' } };

export function useUPlot(box: RefObject<HTMLDivElement | null>, data: uPlot.AlignedData | null, options: (width: number) => uPlot.Options, rebuild: unknown = null): void {
  const plot = useRef<uPlot | null>(null);
  const drawable = data !== null;
  useEffect(() => {
    const el = box.current;
    if (!el || !data) return;
    const opts = options(el.clientWidth);
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: el.clientWidth, height: opts.height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Made again only when there comes to be something to draw, or `rebuild` says so; new data goes below.
  }, [drawable, rebuild]);

  useEffect(() => {
    if (plot.current && data) plot.current.setData(data);
  }, [data]);
}
