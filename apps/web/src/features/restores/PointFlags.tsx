import type { RepositoryRestorePoint } from '@vaultline/contracts';
import { formatDateTime } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { ReleaseHoldButton } from './ReleaseHold.tsx';

/** A restore point's state: damaged (with what a verify found), suspect, ransomware suspect (with its hold), verified, immutable. */
export function PointFlags({ point: p }: { point: RepositoryRestorePoint }) {
  const operator = can(useMe().role, 'operator');
  const immutable = p.immutableUntil && Date.parse(p.immutableUntil) > Date.now();
  return (
    <span className="flags">
      {p.copy && (
        <span className="pill" title="Made by a backup copy job from a restore point in another repository; restores like the original.">
          copy
        </span>
      )}
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
      {p.ransomwareSuspect && (
        <span className="pill status-failed" data-testid="point-ransomware">
          ransomware suspect
        </span>
      )}
      {p.ransomwareSuspect && !p.holdReleasedAt && <span className="pill status-warning">retention held</span>}
      {p.ransomwareSuspect && !p.holdReleasedAt && operator && <ReleaseHoldButton point={p} />}
      {p.ransomwareSuspect && p.holdReleasedAt && (
        <span className="muted small">
          hold released by {p.holdReleasedBy ?? 'unknown'} {formatDateTime(p.holdReleasedAt)}
        </span>
      )}
      {p.verifiedAt && !p.damaged && <span className="pill ok">verified {formatDateTime(p.verifiedAt)}</span>}
      {immutable && <span className="pill">immutable until {formatDateTime(p.immutableUntil)}</span>}
      {!p.damaged && !p.suspect && !p.ransomwareSuspect && !p.verifiedAt && !immutable && <span className="muted">ok</span>}
      {p.damaged && p.damage && <span className="reason block">{p.damage}</span>}
      {p.ransomwareSuspect && p.anomaly && <span className="reason block">{p.anomaly}</span>}
    </span>
  );
}
