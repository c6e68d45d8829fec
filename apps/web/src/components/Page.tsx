import { useEffect, type ReactNode } from 'react';

/** A page: its heading (the page's one h1), optional actions on the right, and content. */
export function Page({ title, actions, children, subtitle }: { title: string; subtitle?: ReactNode; actions?: ReactNode; children: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · Vaultline`;
  }, [title]);
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>{title}</h1>
          {subtitle && <p className="muted subtitle">{subtitle}</p>}
        </div>
        {actions && <div className="page-actions">{actions}</div>}
      </div>
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

export function LoadError({ what, error }: { what: string; error: Error }) {
  return (
    <div className="alert error" role="alert">
      Cannot load {what}: {error.message}
    </div>
  );
}

/** Shown instead of a page the signed-in role may not use (the server refuses it anyway). */
export function NotAllowed({ role }: { role: string }) {
  return (
    <div className="alert error" role="alert">
      This page needs the {role} role.
    </div>
  );
}
