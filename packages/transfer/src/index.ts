/**
 * @vaultline/transfer — Transporter-to-Transporter transfer (issue #17). A repository-side
 * Transporter serves its repository folders over mutually authenticated TLS (RepositoryServer); a
 * source-side Transporter stores into one through TransporterBackend, holding the keys itself, so the
 * serving side only ever keeps sealed bytes. Both sides' certificates come from the Director's
 * Transporter CA, which names each Transporter's id.
 *
 *   const ca = makeTransporterCa();
 *   const server = await RepositoryServer.start({ host, port: 0, identity, caPem: ca.certPem, repositories: { main: '/srv/repo' }, allow });
 *   const backend = new TransporterBackend({ host, port: server.port, repository: 'main', identity, caPem: ca.certPem, serverFingerprint: server.fingerprint });
 *   const repo = await Repository.open(backend, { passphrase });
 */
// The Transporter CA lives in @vaultline/tls (node-forge's one owner); re-exported for the transfer's users.
export { issueTransporterCertificate, makeTransporterCa, transporterIdOf } from '@vaultline/tls';
export type { CertificateAuthority, IssuedCertificate, IssueOptions } from '@vaultline/tls';
export { RepositoryServer } from './server.ts';
export type { RepositoryServerOptions } from './server.ts';
export { TransferError, TransporterBackend, UntrustedServerError } from './client.ts';
export type { TransporterBackendOptions } from './client.ts';
export { REPOSITORY_NAME } from './protocol.ts';
