import { openSecret } from '@vaultline/config';

/** Labels bound into each sealed secret's AAD, so one cannot be swapped for another. */
export const SECRET_LABELS = {
  vcenterPassword: 'vcenter-password',
  repositoryPassphrase: 'repository-passphrase',
  repositorySshKey: 'repository-ssh-key',
  repositoryS3Secret: 'repository-s3-secret',
  transporterSshKey: 'transporter-ssh-key',
  notificationSecret: 'notification-secret',
  /** Bound to the user id as well: `totp-secret:<id>`. */
  totpSecret: 'totp-secret',
  /** The short-lived token between the password and the TOTP code of a sign-in. */
  loginChallenge: 'login-challenge',
  /** The Transporter CA's private key (transfer_ca). */
  transferCaKey: 'transfer-ca-key',
} as const;

export type SecretLabel = (typeof SECRET_LABELS)[keyof typeof SECRET_LABELS];

/**
 * Opens the sealed secret `label` of the vCenter or repository `refId`. The Director and the
 * appliance's own Transporter open the row's column with the appliance key; a remote
 * Transporter, which holds no appliance key and cannot read those columns, opens its own copy
 * sealed to its key. Undefined when there is no such secret.
 */
export type Unsealer = (label: SecretLabel, refId: string, sealed: string | null | undefined) => Promise<string | undefined>;

/** The Unsealer of whoever holds the appliance key. */
export function applianceKeyUnsealer(secretKey: Buffer): Unsealer {
  return async (label, _refId, sealed) => (sealed ? openSecret(secretKey, label, sealed) : undefined);
}
