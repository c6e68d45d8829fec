import { useSyncExternalStore } from 'react';

/**
 * Whether the console can reach the Director, as last seen: `api` reports each request (answered, or not within its
 * timeout / not at all) and the socket reports its connection. 'unknown' until the first report: nothing is shown.
 */
export type Reach = 'up' | 'down' | 'unknown';
export interface Connection {
  /** Requests to the Director's API. */
  api: Reach;
  /** The socket.io connection that carries live updates (progress, health). */
  socket: Reach;
}

let state: Connection = { api: 'unknown', socket: 'unknown' };
const listeners = new Set<() => void>();

function set(next: Partial<Connection>): void {
  if (Object.entries(next).every(([k, v]) => state[k as keyof Connection] === v)) return;
  state = { ...state, ...next };
  for (const l of listeners) l();
}

export const reportApi = (reach: Reach) => set({ api: reach });
export const reportSocket = (reach: Reach) => set({ socket: reach });

const subscribe = (l: () => void) => {
  listeners.add(l);
  return () => listeners.delete(l);
};

/** The connection's state, re-rendering on change. */
export function useConnection(): Connection {
  return useSyncExternalStore(subscribe, () => state);
}
