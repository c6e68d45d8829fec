import type { RepositoryRestorePoint } from '@vaultline/contracts';
import { formatDateTime } from '../../lib/format.ts';

/** A restore point's state: damaged (with what a verify found), suspect, verified, immutable. */
export function PointFlags({ point: p }: { point: RepositoryRestorePoint }) {
  const immutable = p.immutableUntil && Date.parse(p.immutableUntil) > Date.now();
  return (
    <span className="flags">
      {p.damaged && (
        <span className="pill status-failed" data-testid="point-damaged">
          damaged
        </span>
      )}
      {p.suspect && (
        <span className="pill status-warning" title="The CBT sanity check found a change CBT missed; the next backup re-read every disk.">
          suspect
        </span>
      )}
      {p.verifiedAt && !p.damaged && <span className="pill ok">verified {formatDateTime(p.verifiedAt)}</span>}
      {immutable && <span className="pill">immutable until {formatDateTime(p.immutableUntil)}</span>}
      {!p.damaged && !p.suspect && !p.verifiedAt && !immutable && <span className="muted">ok</span>}
      {p.damaged && p.damage && <span className="reason block">{p.damage}</span>}
    </span>
  );
}
