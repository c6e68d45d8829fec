import type { Role } from '@vaultline/contracts';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether `role` may do what needs `min` (the server checks the same and is the one that decides). */
export function can(role: Role, min: Role): boolean {
  return RANK[role] >= RANK[min];
}
