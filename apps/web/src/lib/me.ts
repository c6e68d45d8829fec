import { createContext, useContext } from 'react';
import type { Me } from '@vaultline/contracts';

export const MeContext = createContext<Me | null>(null);

/** The signed-in user; only used below the sign-in gate. */
export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error('useMe() outside the signed-in console');
  return me;
}
