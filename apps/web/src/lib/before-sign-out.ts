/**
 * Work a page must finish while the user is still signed in, e.g. closing a file-level restore session
 * (after sign-out the Director would refuse the request and the session would hold its mounts until
 * it times out). Sign-out waits for these, at most a few seconds, whatever their outcome.
 */
const tasks = new Set<() => Promise<unknown>>();

/** Registers `task`; returns the function that removes it again. */
export function beforeSignOut(task: () => Promise<unknown>): () => void {
  tasks.add(task);
  return () => tasks.delete(task);
}

export async function runBeforeSignOut(limitMs = 3_000): Promise<void> {
  const all = Promise.allSettled([...tasks].map((t) => t()));
  await Promise.race([all, new Promise((r) => setTimeout(r, limitMs))]);
}
