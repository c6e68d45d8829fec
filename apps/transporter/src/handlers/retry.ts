/**
 * Whether another attempt of a failed VM could succeed, decided by the error's type: a wrong vCenter
 * password, a missing permission, an untrusted certificate, a wrong repository passphrase, a full or
 * damaged repository fail the
 * same way every time, so the item fails at once with the reason instead of three times over minutes.
 * vSphere faults the client does not know by name are retried (nothing says they cannot pass).
 */
import { VmBackupError } from '@vaultline/core';
import { CorruptDataError, RepositoryFullError, WrongPassphraseError } from '@vaultline/repository';
import { VimFault, VSphereError } from '@vaultline/vsphere';

export function retryCanHelp(err: unknown): boolean {
  if (err instanceof VmBackupError) return err.retriable;
  if (err instanceof WrongPassphraseError || err instanceof RepositoryFullError || err instanceof CorruptDataError) return false;
  if (err instanceof VSphereError) return err.isRetriable() || err.constructor === VimFault;
  return true;
}
