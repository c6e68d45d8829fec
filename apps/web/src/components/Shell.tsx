import { useEffect, useRef, useState, type FocusEvent, type KeyboardEvent, type ReactNode } from 'react';
import { NavLink, useLocation } from 'react-router';
import type { Me } from '@vaultline/contracts';
import { paths } from '../config/paths.ts';
import { can } from '../lib/roles.ts';
import { ConnectionBanner } from './ConnectionBanner.tsx';
import { Logo } from './Logo.tsx';
import { UserMenu } from './UserMenu.tsx';

const NAV = [
  { to: paths.overview, label: 'Overview', end: true },
  { to: paths.jobs, label: 'Jobs' },
  { to: paths.drills, label: 'Drills' },
  { to: paths.instantRecoveries, label: 'Instant recovery' },
  { to: paths.runs, label: 'Runs' },
  { to: paths.repositories, label: 'Repositories' },
  { to: paths.transporters, label: 'Transporters' },
  { to: paths.vcenters, label: 'vCenters' },
] as const;

/**
 * The top bar. Its links sit inline on a wide window; on a narrower one (styles.css, up to 1279 px) they
 * collapse behind a Menu button, a disclosure that closes on Escape, on a click or focus outside and on navigation.
 */
export function Shell({ me, onSignOut, children }: { me: Me; onSignOut: () => void; children: ReactNode }) {
  const { pathname } = useLocation();
  // The path the menu was opened on: going anywhere else closes it (no effect needed).
  const [openOn, setOpenOn] = useState<string | null>(null);
  const open = openOn === pathname;
  const navRef = useRef<HTMLElement>(null);
  const toggle = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (!open) return;
    const onDown = (e: MouseEvent) => {
      if (!navRef.current?.contains(e.target as Node)) setOpenOn(null);
    };
    document.addEventListener('mousedown', onDown);
    return () => document.removeEventListener('mousedown', onDown);
  }, [open]);
  // Focus leaving the navigation (Tab past its last link) closes the menu: it would cover the page being used.
  const onBlur = (e: FocusEvent) => {
    if (open && !navRef.current?.contains(e.relatedTarget as Node | null)) setOpenOn(null);
  };
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Escape' && open) {
      setOpenOn(null);
      toggle.current?.focus();
    }
  };
  // A link chosen in the open menu: the menu closes, so focus goes to the page it opens, not to a hidden link.
  const chosen = () => {
    if (!open) return;
    setOpenOn(null);
    document.getElementById('main')?.focus();
  };
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          <Logo /> <span>Vaultline</span>
        </div>
        <nav aria-label="Main" className="main-nav" ref={navRef} onKeyDown={onKeyDown} onBlur={onBlur}>
          <button ref={toggle} type="button" className="nav-toggle" aria-expanded={open} aria-controls="main-nav-links" onClick={() => setOpenOn(open ? null : pathname)}>
            <span className="nav-toggle-icon" aria-hidden="true" />
            Menu
          </button>
          <div id="main-nav-links" className={open ? 'nav-links open' : 'nav-links'}>
            {NAV.map((n) => (
              <NavLink key={n.to} to={n.to} end={'end' in n} onClick={chosen}>
                {n.label}
              </NavLink>
            ))}
            {can(me.role, 'operator') && (
              <NavLink to={paths.notifications} onClick={chosen}>
                Notifications
              </NavLink>
            )}
            {can(me.role, 'admin') && (
              <NavLink to={paths.users} onClick={chosen}>
                Users
              </NavLink>
            )}
          </div>
        </nav>
        <UserMenu me={me} onSignOut={onSignOut} />
      </header>
      <main id="main" tabIndex={-1}>
        <ConnectionBanner />
        {children}
      </main>
    </div>
  );
}
