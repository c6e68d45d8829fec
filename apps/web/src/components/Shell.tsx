import type { ReactNode } from 'react';
import type { Me } from '@vaultline/contracts';
import { api } from '../lib/api.ts';
import { Logo } from './Logo.tsx';

export function Shell({ me, onSignOut, children }: { me: Me; onSignOut: () => void; children: ReactNode }) {
  return (
    <div className="shell">
      <header className="topbar">
        <div className="brand">
          <Logo /> <span>Vaultline</span>
        </div>
        <nav>
          <a className="active" href="/">Overview</a>
        </nav>
        <div className="user">
          <span title={`role: ${me.role}`}>{me.username}</span>
          <button
            className="link"
            onClick={() => {
              void api('/api/auth/logout', { method: 'POST' }).finally(onSignOut);
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main>{children}</main>
    </div>
  );
}
