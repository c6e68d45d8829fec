import { useEffect, useRef } from 'react';
import { io, type Socket } from 'socket.io-client';

let socket: Socket | null = null;
let sessionEnded: () => void = () => undefined;

/** What to do when the Director drops the socket because its session ended (signed out elsewhere, expired, user deleted). */
export function onSessionEnded(fn: () => void): void {
  sessionEnded = fn;
}

/** One socket per page, opened after sign-in (the server checks the session cookie). */
export function getSocket(): Socket {
  if (!socket) {
    socket = io({ path: '/socket.io', withCredentials: true, transports: ['websocket', 'polling'] });
    socket.on('session.ended', () => sessionEnded());
  }
  return socket;
}

export function closeSocket(): void {
  socket?.close();
  socket = null;
}

/** Subscribes to socket events for the component's lifetime; the handler may change between renders. */
export function useSocketEvents(events: readonly string[], handler: (event: string, payload: unknown) => void): void {
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  const key = events.join(',');
  useEffect(() => {
    const s = getSocket();
    const subs = key.split(',').map((e) => {
      const fn = (payload: unknown) => ref.current(e, payload);
      s.on(e, fn);
      return [e, fn] as const;
    });
    return () => {
      for (const [e, fn] of subs) s.off(e, fn);
    };
  }, [key]);
}
