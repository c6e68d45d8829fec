/** A repository location that cannot hold a repository; the message names the location and why. */
export class RepositoryLocationError extends Error {
  override name = 'RepositoryLocationError';
}
