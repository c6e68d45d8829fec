import { useEffect } from 'react';
import { api } from '../lib/api.ts';
import { useConnection } from '../lib/connection.ts';

/** While the Director is not answering, how often a light request asks whether it is back. */
const PROBE_EVERY_MS = 5_000;

/**
 * Says, above the page, that the Director stopped answering (a request failed or timed out) or that live updates
 * stopped (the socket is down), and goes away once it answers again. While it is down a light health request every
 * few seconds finds out, so the notice clears even on a page that does not poll.
 */
export function ConnectionBanner() {
  const { api: apiReach, socket } = useConnection();
  const apiDown = apiReach === 'down';
  useEffect(() => {
    if (!apiDown) return;
    const timer = setInterval(() => void api('/api/health', { timeoutSeconds: 5 }).catch(() => undefined), PROBE_EVERY_MS);
    return () => clearInterval(timer);
  }, [apiDown]);
  if (!apiDown && socket !== 'down') return null;
  return (
    <div className="alert error connection-banner" role="alert" data-testid="connection-banner">
      {apiDown ? (
        <>
          <strong>The Director is not answering.</strong> What this page shows may be out of date; the console keeps trying and this notice goes away when the Director answers again.
        </>
      ) : (
        <>
          <strong>Live updates have stopped:</strong> the connection to the Director is down. Reconnecting… Until then, progress and states on this page are not updated.
        </>
      )}
    </div>
  );
}
