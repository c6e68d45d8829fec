import { useQuery } from '@tanstack/react-query';
import type { CreateUserRequest, Me, Ok, TotpEnrollment, User } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

export const useUsers = (enabled = true) => useQuery({ queryKey: ['users'], queryFn: () => api<User[]>('/api/users'), enabled });
export const createUser = (body: CreateUserRequest) => api<User>('/api/users', { method: 'POST', body });
export const deleteUser = (id: string, currentPassword: string) => api<Ok>(`/api/users/${id}`, { method: 'DELETE', body: { currentPassword } });
export const changePassword = (currentPassword: string, newPassword: string) => api<Ok>('/api/auth/change-password', { method: 'POST', body: { currentPassword, newPassword } });
export const signOut = () => api<Ok>('/api/auth/logout', { method: 'POST' });

/** Two-factor sign-in (admins): enrol shows the secret once, confirm turns it on, disable needs password and code. */
export const enrollTotp = () => api<TotpEnrollment>('/api/auth/totp/enroll', { method: 'POST' });
export const confirmTotp = (code: string) => api<Me>('/api/auth/totp/confirm', { method: 'POST', body: { code } });
export const disableTotp = (currentPassword: string, code: string) => api<Me>('/api/auth/totp/disable', { method: 'POST', body: { currentPassword, code } });
