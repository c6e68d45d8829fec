import { useQuery } from '@tanstack/react-query';
import type { CreateUserRequest, User } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

export const useUsers = (enabled = true) => useQuery({ queryKey: ['users'], queryFn: () => api<User[]>('/api/users'), enabled });
export const createUser = (body: CreateUserRequest) => api<User>('/api/users', { method: 'POST', body });
export const deleteUser = (id: string) => api<{ ok: true }>(`/api/users/${id}`, { method: 'DELETE' });
export const changePassword = (currentPassword: string, newPassword: string) => api<{ ok: true }>('/api/auth/change-password', { method: 'POST', body: { currentPassword, newPassword } });
export const signOut = () => api<{ ok: true }>('/api/auth/logout', { method: 'POST' });
