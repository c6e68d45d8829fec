/**
 * A remote Transporter opens secrets with its own key: the Director sealed each
 * vCenter password and repository key to its public key (transporter_secrets,
 * whose rows its database role sees only for itself). It never holds the
 * appliance key, and its role cannot read the columns sealed under it.
 */
import type { Unsealer } from '@vaultline/appliance';
import { openSealedTo } from '@vaultline/config';
import type { Db } from '@vaultline/db';

export function ownKeyUnsealer(db: Db, transporterId: string, privateKey: string): Unsealer {
  return async (label, refId) => {
    const row = await db.transporterSecret.findUnique({ where: { transporterId_label_refId: { transporterId, label, refId } }, select: { sealed: true } });
    return row ? openSealedTo(privateKey, label, row.sealed) : undefined;
  };
}
