import type { ReactNode } from 'react';
import { NavLink } from 'react-router';
import type { Me } from '@vaultline/contracts';
import { paths } from '../config/paths.ts';
import { can } from '../lib/roles.ts';
import { Logo } from './Logo.tsx';
import { UserMenu } from './UserMenu.tsx';

const NAV = [
  { to: paths.overview, label: 'Overview', end: true },
  { to: paths.jobs, label: 'Jobs' },
  { to: paths.drills, label: 'Drills' },
  { to: paths.runs, label: 'Runs' },
  { to: paths.repositories, label: 'Repositories' },
  { to: paths.transporters, label: 'Transporters' },
  { to: paths.vcenters, label: 'vCenters' },
] as const;

export function Shell({ me, onSignOut, children }: { me: Me; onSignOut: () => void; children: ReactNode }) {
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          <Logo /> <span>Vaultline</span>
        </div>
        <nav aria-label="Main">
          {NAV.map((n) => (
            <NavLink key={n.to} to={n.to} end={'end' in n}>
              {n.label}
            </NavLink>
          ))}
          {can(me.role, 'operator') && <NavLink to={paths.notifications}>Notifications</NavLink>}
          {can(me.role, 'admin') && <NavLink to={paths.users}>Users</NavLink>}
        </nav>
        <UserMenu me={me} onSignOut={onSignOut} />
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}
