import { io, type Socket } from 'socket.io-client';

let socket: Socket | null = null;

/** One socket per page, opened after sign-in (the server checks the session cookie). */
export function getSocket(): Socket {
  socket ??= io({ path: '/socket.io', withCredentials: true, transports: ['websocket', 'polling'] });
  return socket;
}

export function closeSocket(): void {
  socket?.close();
  socket = null;
}
