import { useQuery, useQueryClient } from '@tanstack/react-query';
import type { Me } from '@vaultline/contracts';
import { api, ApiRequestError } from './lib/api.ts';
import { closeSocket } from './lib/socket.ts';
import { LoginPage } from './features/auth/LoginPage.tsx';
import { ChangePasswordPage } from './features/auth/ChangePasswordPage.tsx';
import { StatusPage } from './features/status/StatusPage.tsx';
import { Shell } from './components/Shell.tsx';

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
    qc.setQueryData(['me'], null);
  };

  if (me.isPending) return <div className="splash">Loading…</div>;
  if (me.isError) return <div className="splash error">The Director is not answering: {me.error.message}</div>;
  if (!me.data) return <LoginPage onSignedIn={(m) => qc.setQueryData(['me'], m)} />;
  if (me.data.mustChangePassword) {
    return <ChangePasswordPage me={me.data} onChanged={() => qc.setQueryData(['me'], { ...me.data, mustChangePassword: false })} onSignOut={signedOut} />;
  }
  return (
    <Shell me={me.data} onSignOut={signedOut}>
      <StatusPage me={me.data} />
    </Shell>
  );
}
