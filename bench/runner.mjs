// Runs the benchmark's external commands (sync, cp, du, cmp, cat, the peers)
// on behalf of bench/run.ts, which starts this process once, before anything
// else, and never forks itself again.
//
// Why: a fork write-protects every page of the forking process for
// copy-on-write, and each page that process writes afterwards takes a fault —
// about as dear here as a fresh page (~15 µs). Spawning `sync` from the
// benchmark before each timed step made our writer pay again for its 16 MiB of
// chunk slots and its heap: ~40-50 ms of a ~0.3 s incremental, a cost no
// Transporter pays per backup and no peer pays at all (each runs as a new
// process). Here the forks cost only this small process.
import { spawnSync } from 'node:child_process';

process.on('disconnect', () => process.exit(0));
process.on('message', (m) => {
  const steps = [];
  for (const c of m.commands) {
    const t = performance.now();
    const r = spawnSync(c.cmd, c.args, {
      stdio: ['ignore', c.stdout ? 'pipe' : 'ignore', 'pipe'],
      env: { ...process.env, ...(c.env ?? {}) },
      maxBuffer: 64 * 1024 * 1024,
    });
    steps.push({
      status: r.status,
      error: r.error ? r.error.message : null,
      stdout: r.stdout ? r.stdout.toString() : '',
      stderr: r.stderr ? r.stderr.toString().slice(-2000) : '',
      seconds: (performance.now() - t) / 1000,
    });
    if (r.status !== 0 && !c.mayFail) break;
  }
  process.send({ id: m.id, steps });
});
