/**
 * Delivery commands (run through scripts/vaultline.mjs, which sets up the
 * repository first):
 *   build-ova                      the appliance: ova-build/dist/vaultline-<version>.ova
 *   stage <dir>                    the app as /opt/vaultline holds it (used by docker/Dockerfile)
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BuildError } from './exec.ts';
import { buildOva } from './ova.ts';
import { stageInto } from './stage.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === 'build-ova') {
    const r = await buildOva({ rootDir: ROOT });
    process.stdout.write(JSON.stringify({ ova: r.ova, raw: r.raw, version: r.version, digest: r.digest, cached: r.cached, bytes: r.bytes, seconds: r.seconds }) + '\n');
  } else if (cmd === 'stage' && rest[0]) {
    await stageInto(ROOT, path.resolve(rest[0]));
  } else {
    throw new BuildError('usage: cli.ts build-ova | stage <dir>');
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`vaultline delivery: ${err instanceof BuildError ? err.message : ((err as Error)?.stack ?? String(err))}\n`);
  process.exit(1);
});
