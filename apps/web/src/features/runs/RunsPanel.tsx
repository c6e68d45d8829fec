import { useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import type { DiskProgress, Run } from '@vaultline/contracts';
import { api } from '../../lib/api.ts';
import { formatBytes, formatDuration } from '../../lib/format.ts';
import { getSocket } from '../../lib/socket.ts';

type Live = Record<string, DiskProgress>;

function Bar({ done, total }: { done: number; total: number }) {
  const pct = total > 0 ? Math.min(100, (done / total) * 100) : 0;
  return (
    <div className="bar" role="progressbar" aria-valuenow={Math.round(pct)} aria-valuemin={0} aria-valuemax={100}>
      <div style={{ width: `${pct}%` }} />
    </div>
  );
}

export function RunsPanel() {
  const qc = useQueryClient();
  const runs = useQuery({ queryKey: ['runs'], queryFn: () => api<Run[]>('/api/runs?limit=10'), refetchInterval: 15_000 });
  const [live, setLive] = useState<Live>({});

  useEffect(() => {
    const socket = getSocket();
    const refresh = () => void qc.invalidateQueries({ queryKey: ['runs'] });
    const onProgress = (p: DiskProgress) => setLive((l) => ({ ...l, [`${p.runVmId}:${p.deviceKey}`]: p }));
    socket.on('disk.progress', onProgress);
    for (const e of ['vm.phase', 'vm.finished', 'run.finished']) socket.on(e, refresh);
    return () => {
      socket.off('disk.progress', onProgress);
      for (const e of ['vm.phase', 'vm.finished', 'run.finished']) socket.off(e, refresh);
    };
  }, [qc]);

  return (
    <section className="card" data-testid="runs">
      <h3>Recent runs</h3>
      {runs.isPending && <p className="muted">Loading…</p>}
      {runs.isError && <p className="reason">{runs.error.message}</p>}
      {runs.data?.length === 0 && <p className="muted">Nothing has run yet. Pick a VM above and back it up.</p>}
      {runs.data?.map((run) => (
        <div key={run.id} className="run" data-testid="run">
          <div className="row">
            <strong>{run.kind === 'backup' ? 'Backup' : run.kind}</strong>
            <span className="muted small">{new Date(run.createdAt).toLocaleString()}</span>
            <span className={`pill status-${run.status}`} data-testid="run-status">
              {run.status}
            </span>
          </div>
          {run.vms.map((vm) => (
            <div key={vm.id} className="run-vm">
              <div className="row">
                <span>{vm.vmName}</span>
                <span className="muted small">{vm.phase}</span>
              </div>
              {vm.error && <p className="reason">{vm.error}</p>}
              {vm.disks.map((d) => {
                const p = live[`${vm.id}:${d.deviceKey}`];
                const read = p?.bytesRead ?? d.bytesRead;
                const skipped = p?.bytesSkipped ?? d.bytesSkipped;
                return (
                  <div key={d.id} className="run-disk">
                    <div className="row small">
                      <span>
                        {d.label} · {d.transport ?? '…'} {d.cbtUsed && <span className="muted">· CBT</span>}
                      </span>
                      <span className="muted">
                        read {formatBytes(read)} · skipped {formatBytes(skipped)} · stored {formatBytes(p?.bytesWritten ?? d.bytesWritten)}
                        {p && vm.status === 'running' && p.bytesPerSecond > 0 && ` · ${formatBytes(p.bytesPerSecond)}/s`}
                        {p && vm.status === 'running' && p.etaSeconds !== null && ` · ${formatDuration(p.etaSeconds)} left`}
                      </span>
                    </div>
                    <Bar done={read + skipped} total={d.capacityBytes} />
                    {d.transportReason.length > 0 && (
                      <ul className="reasons small muted">
                        {d.transportReason.map((r) => (
                          <li key={r}>{r}</li>
                        ))}
                      </ul>
                    )}
                  </div>
                );
              })}
            </div>
          ))}
        </div>
      ))}
    </section>
  );
}
