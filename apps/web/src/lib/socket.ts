import { useEffect, useRef } from 'react';
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '@vaultline/contracts';
import { reportSocket } from './connection.ts';

type VaultlineSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
type EventName = keyof ServerToClientEvents;
/** What the Director sends with event `E`. */
export type SocketPayload<E extends EventName> = Parameters<ServerToClientEvents[E]>[0];

let socket: VaultlineSocket | null = null;
let sessionEnded: () => void = () => undefined;

/** What to do when the Director drops the socket because its session ended (signed out elsewhere, expired, user deleted). */
export function onSessionEnded(fn: () => void): void {
  sessionEnded = fn;
}

/** One socket per page, opened after sign-in (the server checks the session cookie). */
export function getSocket(): VaultlineSocket {
  if (!socket) {
    socket = io({ path: '/socket.io', withCredentials: true, transports: ['websocket', 'polling'] });
    socket.on('session.ended', () => sessionEnded());
    // The shell's banner says when live updates stop; socket.io reconnects on its own and `connect` clears it.
    socket.on('connect', () => reportSocket('up'));
    socket.on('connect_error', () => reportSocket('down'));
    socket.on('disconnect', (reason) => reportSocket(reason === 'io client disconnect' ? 'unknown' : 'down'));
  }
  return socket;
}

export function closeSocket(): void {
  socket?.close();
  socket = null;
  reportSocket('unknown');
}

/** Subscribes to socket events for the component's lifetime; the handler may change between renders. */
export function useSocketEvents<E extends EventName>(events: readonly E[], handler: (event: E, payload: SocketPayload<E>) => void): void {
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  const key = events.join(',');
  useEffect(() => {
    const s = getSocket();
    // The names came from `events` (joined into `key` so the effect runs once per set of names).
    const untyped = s as unknown as { on(e: string, fn: (p: unknown) => void): void; off(e: string, fn: (p: unknown) => void): void };
    const subs = (key.split(',') as E[]).map((e) => {
      const fn = (payload: unknown) => ref.current(e, payload as SocketPayload<E>);
      untyped.on(e, fn);
      return [e, fn] as const;
    });
    return () => {
      for (const [e, fn] of subs) untyped.off(e, fn);
    };
  }, [key]);
}
