import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { App } from './App.tsx';
import { ApiRequestError } from './lib/api.ts';
import { closeSocket, onSessionEnded } from './lib/socket.ts';
import './styles.css';

// A session that ended (expired, signed out elsewhere, password changed) brings back the sign-in page.
const onError = (err: unknown) => {
  if (!(err instanceof ApiRequestError && err.status === 401 && queryClient.getQueryData(['me']))) return;
  closeSocket();
  queryClient.setQueryData(['me'], null);
  queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== 'me' });
};
const queryClient: QueryClient = new QueryClient({
  defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: false } },
  queryCache: new QueryCache({ onError }),
  mutationCache: new MutationCache({ onError }),
});

// The Director says so over the socket at once: asking who we are then gets the 401 that signs the page out.
onSessionEnded(() => void queryClient.invalidateQueries({ queryKey: ['me'] }));

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
