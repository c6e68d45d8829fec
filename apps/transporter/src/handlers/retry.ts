/**
 * Whether another attempt of a failed VM could succeed, decided by the error's type: a wrong vCenter
 * password, a missing permission, an untrusted certificate, a wrong repository passphrase, a full or
 * damaged repository, storage that cannot keep a point immutable (an S3 bucket without Object Lock) fail the
 * same way every time, so the item fails at once with the reason instead of three times over minutes.
 * vSphere faults the client does not know by name are retried (nothing says they cannot pass).
 */
import { VmBackupError } from '@vaultline/core';
import { CorruptDataError, ImmutableError, RepositoryFullError, WrongPassphraseError } from '@vaultline/repository';
import { VimFault, VSphereError } from '@vaultline/vsphere';

export function retryCanHelp(err: unknown): boolean {
  if (err instanceof VmBackupError) return err.retriable;
  if (err instanceof WrongPassphraseError || err instanceof RepositoryFullError || err instanceof CorruptDataError || err instanceof ImmutableError) return false;
  if (err instanceof VSphereError) return err.isRetriable() || err.constructor === VimFault;
  return true;
}
