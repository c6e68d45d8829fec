/**
 * The errors the engine throws, in one place: the Transporter's handlers tell a cancel, a refusal and a
 * failure apart by these types, and the adapters throw the ones a port's contract names (QuiesceError).
 */

/** A VM's backup failed; `retriable` says whether another attempt could help. */
export class VmBackupError extends Error {
  override name = 'VmBackupError';
  constructor(
    message: string,
    /** false when retrying cannot help (VM deleted, manual transport unavailable, quiesce required and failing). */
    readonly retriable: boolean,
    /** `cause`: the error it wraps (its type says what to advise; see @vaultline/vsphere forOperators). */
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A hot-added disk could not be detached from the proxy VM. It stays attached, and vSphere cannot remove
 * the snapshot under it: the orphan sweep detaches it first, then removes the snapshot.
 */
export class DetachError extends Error {
  override name = 'DetachError';
}

export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor() {
    super('cancelled by the operator');
  }
}

/** Quiescing the guest failed while taking the snapshot (thrown by VSpherePort.createSnapshot). */
export class QuiesceError extends Error {
  override name = 'QuiesceError';
}

/** The transport mode asked for cannot read or write this disk (a manual choice is refused, not changed). */
export class TransportUnavailable extends Error {
  override name = 'TransportUnavailable';
}

export class RestoreError extends Error {
  override name = 'RestoreError';
}

/** The restore point cannot be read: never retried over another transport. */
export class DamagedPointError extends RestoreError {
  override name = 'DamagedPointError';
}
