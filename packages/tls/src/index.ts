export { SELF_SIGNED_CERT, SELF_SIGNED_KEY, certificateFingerprint, loadTlsIdentity, makeSelfSignedCertificate, selfSignedNames, spkiHash } from './certificate.ts';
export type { LoadTlsOptions, TlsIdentity } from './certificate.ts';
export { PinMismatchError, normalizeFingerprint, pinnedAgent, pinnedFetch } from './client.ts';
export type { PinnedRequest } from './client.ts';
export { issueTransporterCertificate, makeTransporterCa, transporterIdOf } from './transporter-ca.ts';
export type { CertificateAuthority, IssuedCertificate, IssueOptions } from './transporter-ca.ts';
export { certificateFits, certificateRequest, CertificateRequestError, makeTransferKey, namesCovered, publicKeyOf, signCertificateRequest } from './transporter-ca.ts';
export type { ServeNames } from './transporter-ca.ts';
