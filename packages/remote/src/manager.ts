/**
 * The operations the Director offers on a remote Transporter, each over its own
 * SSH session (opened with the pinned host key, always closed again).
 */
import type { TransporterBundle } from './bundle.ts';
import { deployBundle, logTail, remoteState, removeFiles, restartRemote, type DeployResult, type RemoteProcessState, type RemoveResult } from './install.ts';
import { defaultInstallDir, hostFacts, installFolderFacts, judgeInstallFolder, judgePlatform, SPACE_MARGIN_BYTES, type HostFacts, type InstallFolderFacts } from './preflight.ts';
import { RemoteSession, type RemoteTarget } from './ssh.ts';

export interface RemoteHostSpec extends RemoteTarget {
  /** Absolute install folder; the default depends on the user (root or not). */
  installDir?: string | null;
}

export interface HostCheck {
  facts: HostFacts;
  folder: InstallFolderFacts;
  installDir: string;
  neededBytes: number;
}

async function withSession<T>(spec: RemoteTarget, fn: (s: RemoteSession) => Promise<T>): Promise<T> {
  const session = await RemoteSession.open(spec);
  try {
    return await fn(session);
  } finally {
    session.dispose();
  }
}

async function check(session: RemoteSession, spec: RemoteHostSpec, bundle: TransporterBundle): Promise<HostCheck> {
  const facts = await hostFacts(session);
  judgePlatform(spec.host, facts, bundle);
  const installDir = (spec.installDir ?? defaultInstallDir(facts)).replace(/\/+$/, '');
  const folder = await installFolderFacts(session, installDir);
  // An upgrade unpacks next to the running version, so the full bundle is needed either way.
  const neededBytes = bundle.unpackedBytes + SPACE_MARGIN_BYTES;
  judgeInstallFolder(spec.host, facts.user, folder, neededBytes);
  return { facts, folder, installDir, neededBytes };
}

/** Signs in and checks the host can take the bundle: Linux, architecture, glibc, tools, space, permission. */
export function checkHost(spec: RemoteHostSpec, bundle: TransporterBundle): Promise<HostCheck> {
  return withSession(spec, (s) => check(s, spec, bundle));
}

export function deployTransporter(
  spec: RemoteHostSpec,
  bundle: TransporterBundle,
  install: { transporterId: string; name: string; env: Record<string, string>; tlsCa?: string },
): Promise<DeployResult & { check: HostCheck }> {
  return withSession(spec, async (s) => {
    const c = await check(s, spec, bundle);
    const result = await deployBundle(s, { bundle, facts: c.facts, folder: c.folder, name: install.name, spec: { transporterId: install.transporterId, installDir: c.installDir, env: install.env, ...(install.tlsCa !== undefined ? { tlsCa: install.tlsCa } : {}) } });
    return { ...result, check: c };
  });
}

export function remoteStatus(spec: RemoteTarget, installDir: string, transporterId: string): Promise<RemoteProcessState> {
  return withSession(spec, (s) => remoteState(s, installDir, transporterId));
}

export function restartTransporter(spec: RemoteTarget, installDir: string, transporterId: string): Promise<RemoteProcessState> {
  return withSession(spec, (s) => restartRemote(s, installDir, transporterId));
}

export function removeTransporter(spec: RemoteTarget, installDir: string, transporterId: string): Promise<RemoveResult> {
  return withSession(spec, (s) => removeFiles(s, installDir, transporterId));
}

export function remoteLogTail(spec: RemoteTarget, installDir: string, transporterId: string): Promise<string> {
  return withSession(spec, (s) => logTail(s, installDir, transporterId));
}
