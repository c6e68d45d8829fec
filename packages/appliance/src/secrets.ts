/** Labels bound into each sealed secret's AAD, so one cannot be swapped for another. */
export const SECRET_LABELS = {
  vcenterPassword: 'vcenter-password',
  repositoryPassphrase: 'repository-passphrase',
  repositorySshKey: 'repository-ssh-key',
  transporterSshKey: 'transporter-ssh-key',
  notificationSecret: 'notification-secret',
  /** Bound to the user id as well: `totp-secret:<id>`. */
  totpSecret: 'totp-secret',
  /** The short-lived token between the password and the TOTP code of a sign-in. */
  loginChallenge: 'login-challenge',
} as const;
