// Packages from Debian's archive, installed when running as root.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { SetupError, say } from './output.mjs';
import { isRoot } from './paths.mjs';
import { have, run } from './processes.mjs';

let aptUpdated = false;
export function aptInstall(pkgs, why) {
  if (!isRoot || !have('apt-get')) {
    throw new SetupError(`${why}\n  Install it with: sudo apt-get install ${pkgs.join(' ')}   (or point the URL at a running server)`);
  }
  say(`installing ${pkgs.join(', ')} from Debian's packages…`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    run('apt-get', ['update', '-qq'], { quiet: true, env, allowFail: true });
    aptUpdated = true;
  }
  // policy-rc.d keeps the package from starting a system-wide service of its own.
  const policy = '/usr/sbin/policy-rc.d';
  const hadPolicy = existsSync(policy);
  if (!hadPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { quiet: true, env });
  } finally {
    if (!hadPolicy) rmSync(policy, { force: true });
  }
}
