import { useCallback, useEffect, useRef, useState } from 'react';
import type { BrowseSessionDto } from '@vaultline/contracts';
import { closeBrowseSession, closeBrowseSessionOnLeave, getBrowseSession, openBrowseSession } from '../../api/file-restore.ts';
import { ApiRequestError, errorMessage } from '../../lib/api.ts';
import { beforeSignOut } from '../../lib/before-sign-out.ts';

export type BrowseSessionState =
  | { kind: 'opening' }
  | { kind: 'open'; view: BrowseSessionDto }
  | { kind: 'closing'; view: BrowseSessionDto }
  /** The Director refused: 503 (it may not mount here), 429 (too many sessions), 404, … */
  | { kind: 'failed'; status: number | null; message: string }
  | { kind: 'closed' }
  /** The Director closed it: unused for its idle timeout (or the Director restarted). */
  | { kind: 'ended'; idleTimeoutSeconds: number };

/**
 * Past the idle timeout the Director closes a session within its next check (at most 30 s later);
 * asking only after this margin never keeps alive a session that was about to close.
 */
const CHECK_MARGIN_MS = 45_000;

/**
 * One browse session for the page's lifetime: opened on arrival, closed by `close()`, when the page is
 * left (in-app navigation or the tab going away) and noticed when the Director closed it for being idle.
 */
export function useBrowseSession(pointId: string) {
  const [state, setState] = useState<BrowseSessionState>({ kind: 'opening' });
  const [attempt, setAttempt] = useState(0);
  const token = useRef<string | null>(null);
  const lastUsed = useRef(Date.now());

  useEffect(() => {
    let alive = true;
    setState({ kind: 'opening' });
    openBrowseSession(pointId).then(
      (view) => {
        if (!alive) {
          closeBrowseSessionOnLeave(pointId, view.session);
          return;
        }
        token.current = view.session;
        lastUsed.current = Date.now();
        setState({ kind: 'open', view });
      },
      (err: unknown) => {
        if (alive) setState({ kind: 'failed', status: err instanceof ApiRequestError ? err.status : null, message: errorMessage(err) });
      },
    );
    const leave = () => {
      if (token.current) closeBrowseSessionOnLeave(pointId, token.current);
      token.current = null;
    };
    // Back from the browser's page cache: the session was closed when the page was hidden.
    const back = (e: PageTransitionEvent) => {
      if (e.persisted) setState((s) => (s.kind === 'open' ? { kind: 'closed' } : s));
    };
    window.addEventListener('pagehide', leave);
    window.addEventListener('pageshow', back);
    // Signing out from this page: close first, while the Director still takes the request.
    const unregister = beforeSignOut(async () => {
      const t = token.current;
      token.current = null;
      if (t) await closeBrowseSession(pointId, t);
    });
    return () => {
      alive = false;
      unregister();
      window.removeEventListener('pagehide', leave);
      window.removeEventListener('pageshow', back);
      leave();
    };
  }, [pointId, attempt]);

  const view = state.kind === 'open' || state.kind === 'closing' ? state.view : null;

  /** Whether the Director still has the session; if not, the page says it ended. */
  const check = useCallback(async () => {
    const t = token.current;
    if (!t || !view) return;
    try {
      await getBrowseSession(pointId, t);
      lastUsed.current = Date.now();
    } catch (err) {
      if (err instanceof ApiRequestError && err.status === 404 && token.current === t) {
        token.current = null;
        setState({ kind: 'ended', idleTimeoutSeconds: view.idleTimeoutSeconds });
      }
    }
  }, [pointId, view]);

  // Unused past the idle timeout: ask whether the Director has closed it (a long download keeps it open).
  useEffect(() => {
    if (!view) return;
    const timer = setInterval(() => {
      if (Date.now() - lastUsed.current > view.idleTimeoutSeconds * 1000 + CHECK_MARGIN_MS) void check();
    }, 5_000);
    return () => clearInterval(timer);
  }, [view, check]);

  const used = useCallback(() => {
    lastUsed.current = Date.now();
  }, []);

  const close = useCallback(async () => {
    const t = token.current;
    if (!t || !view) return;
    setState({ kind: 'closing', view });
    try {
      await closeBrowseSession(pointId, t);
    } catch (err) {
      // Already gone is closed, too; anything else is said and the session stays usable.
      if (!(err instanceof ApiRequestError && err.status === 404)) {
        setState({ kind: 'open', view });
        throw err;
      }
    }
    token.current = null;
    setState({ kind: 'closed' });
  }, [pointId, view]);

  const reopen = useCallback(() => setAttempt((n) => n + 1), []);

  return { state, session: view?.session ?? null, used, check, close, reopen };
}
