import type { RepositoryRestorePoint } from '@vaultline/contracts';
import { formatBytes, formatDateTime } from '../../lib/format.ts';
import { PointFlags } from './PointFlags.tsx';

/** Step 1: the VM's restore points, newest first, with their size and flags. */
export function PointStep({ points, chosen, choose }: { points: RepositoryRestorePoint[]; chosen: string; choose: (p: RepositoryRestorePoint) => void }) {
  return (
    <fieldset className="step-body">
      <legend>Restore point of {points[0]?.vmName ?? 'the VM'}</legend>
      <table className="pick cards" data-testid="restore-points">
        <thead>
          <tr>
            <th scope="col" className="check">
              <span className="sr-only">Choose</span>
            </th>
            <th scope="col">Taken</th>
            <th scope="col">Repository</th>
            <th scope="col">Size</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {points.map((p, i) => (
            <tr key={p.id} className={chosen === p.id ? 'selected' : undefined} data-testid="restore-point-choice" onClick={(e) => (e.target as HTMLElement).closest('input,a') === null && choose(p)}>
              <td className="check">
                <input type="radio" name="point" checked={chosen === p.id} onChange={() => choose(p)} aria-label={`Restore point of ${formatDateTime(p.createdAt)} in ${p.repository}${p.copy ? ' (a copy)' : ''}${i === 0 ? ' (newest)' : ''}`} />
              </td>
              <td data-label="Taken">
                {formatDateTime(p.createdAt)} {i === 0 && <span className="pill">newest</span>}
              </td>
              <td data-label="Repository" className="name-cell">
                {p.repository}
              </td>
              <td data-label="Size">{formatBytes(p.logicalBytes)}</td>
              <td data-label="State">
                <PointFlags point={p} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </fieldset>
  );
}
