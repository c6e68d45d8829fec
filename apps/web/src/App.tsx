import { useQuery, useQueryClient } from '@tanstack/react-query';
import { BrowserRouter } from 'react-router';
import type { Me } from '@vaultline/contracts';
import { signOut } from './api/users.ts';
import { api, ApiRequestError } from './lib/api.ts';
import { runBeforeSignOut } from './lib/before-sign-out.ts';
import { MeContext } from './lib/me.ts';
import { closeSocket } from './lib/socket.ts';
import { LoginPage } from './features/auth/LoginPage.tsx';
import { ChangePasswordPage } from './features/auth/ChangePasswordPage.tsx';
import { Shell } from './components/Shell.tsx';
import { AppRoutes } from './app/router.tsx';
import { ErrorBoundary } from './components/ErrorBoundary.tsx';

export function App() {
  const qc = useQueryClient();
  const me = useQuery({
    queryKey: ['me'],
    queryFn: async () => {
      try {
        return await api<Me>('/api/auth/me');
      } catch (err) {
        if (err instanceof ApiRequestError && err.status === 401) return null;
        throw err;
      }
    },
  });

  const signedOut = () => {
    closeSocket();
    // First leave the signed-in tree, then forget what it had loaded.
    qc.setQueryData(['me'], null);
    qc.removeQueries({ predicate: (q) => q.queryKey[0] !== 'me' });
    // Whoever signs in next starts at the overview, not on the last user's page.
    window.history.replaceState(null, '', '/');
  };
  const doSignOut = () =>
    void runBeforeSignOut()
      .then(() => signOut())
      .catch(() => undefined)
      .finally(signedOut);

  if (me.isPending) return <div className="splash">Loading…</div>;
  if (me.isError) return <div className="splash error">The Director is not answering: {me.error.message}</div>;
  if (!me.data) return <LoginPage onSignedIn={(m) => qc.setQueryData(['me'], m)} />;
  if (me.data.mustChangePassword) {
    return <ChangePasswordPage me={me.data} onChanged={() => qc.setQueryData(['me'], { ...me.data, mustChangePassword: false })} onSignOut={signedOut} />;
  }
  return (
    <MeContext.Provider value={me.data}>
      <BrowserRouter>
        <Shell me={me.data} onSignOut={doSignOut}>
          <ErrorBoundary>
            <AppRoutes />
          </ErrorBoundary>
        </Shell>
      </BrowserRouter>
    </MeContext.Provider>
  );
}
