import type { BrowsePartitionDto, BrowseSessionDto, RestorePointDetail } from '@vaultline/contracts';
import { formatBytes } from '../../lib/format.ts';
import { TableHead } from '../../components/TableHead.tsx';

const TABLE: Record<string, string> = { gpt: 'GPT', dos: 'MBR', mbr: 'MBR', none: 'no partition table' };

/** "Partition 1 (linux root)" or "Whole disk" — how a partition is named on this page. */
export function partitionName(p: BrowsePartitionDto): string {
  if (p.number === 0) return 'Whole disk';
  return p.partitionName ? `Partition ${p.number} (${p.partitionName})` : `Partition ${p.number}`;
}

export const diskLabel = (point: RestorePointDetail | undefined, key: string, index: number) => point?.disks.find((d) => d.key === key)?.label ?? `Disk ${index + 1}`;

/** Every disk of the session with its partitions: filesystem, label, size, and either Browse or why not. */
export function PartitionTable({ view, point, chosen, choose }: { view: BrowseSessionDto; point: RestorePointDetail | undefined; chosen: string | null; choose: (p: BrowsePartitionDto) => void }) {
  return (
    <section className="card" aria-labelledby="partitions-title" data-testid="partitions">
      <h3 id="partitions-title">Disks and partitions</h3>
      {view.disks.map((disk, i) => {
        const label = diskLabel(point, disk.key, i);
        return (
          <div key={disk.key} className="disk-block" data-testid="browse-disk">
            <h4>
              {label} <span className="muted small">{formatBytes(disk.capacityBytes)} · {TABLE[disk.partitionTable] ?? disk.partitionTable}</span>
            </h4>
            {disk.partitions.length === 0 ? (
              <p className="muted">No partition and no filesystem found on this disk.</p>
            ) : (
              <table className="compact partitions cards" aria-label={`Partitions of ${label}`}>
                <TableHead columns={['Partition', 'Filesystem', 'Label', 'Size', 'State']} actions="Browse" />
                <tbody>
                  {disk.partitions.map((p) => (
                    <tr key={p.id} data-testid="partition-row" className={chosen === p.id ? 'selected' : undefined}>
                      <td data-label="Partition" className="nowrap">
                        {partitionName(p)}
                      </td>
                      <td data-label="Filesystem">{p.filesystem ?? <span className="muted">none recognised</span>}</td>
                      <td data-label="Label" className="nowrap">
                        {p.label ?? <span className="muted">—</span>}
                      </td>
                      <td data-label="Size" className="nowrap">
                        {formatBytes(p.sizeBytes)}
                      </td>
                      <td data-label="State">
                        {p.mounted ? (
                          <span className="muted small">read-only{p.driver ? ` · ${p.driver}` : ''}</span>
                        ) : (
                          <span className="reason block" data-testid="partition-reason">
                            Not opened: {p.reason ?? 'no reason given'}
                          </span>
                        )}
                      </td>
                      <td className="actions">
                        {p.mounted && (
                          <button type="button" className={chosen === p.id ? 'primary' : undefined} aria-pressed={chosen === p.id} onClick={() => choose(p)}>
                            Browse<span className="sr-only"> {label} {partitionName(p)}</span>
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        );
      })}
    </section>
  );
}
