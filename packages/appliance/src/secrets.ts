/** Labels bound into each sealed secret's AAD, so one cannot be swapped for another. */
export const SECRET_LABELS = {
  vcenterPassword: 'vcenter-password',
  repositoryPassphrase: 'repository-passphrase',
  repositorySshKey: 'repository-ssh-key',
  transporterSshKey: 'transporter-ssh-key',
  notificationSecret: 'notification-secret',
} as const;
