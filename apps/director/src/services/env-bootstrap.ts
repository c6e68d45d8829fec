/**
 * Unattended set-up at start: the vCenter named by VAULTLINE_VCENTER_* (the lab
 * vCenter under `npm start`) is registered if no vCenter has that URL yet, and
 * a local repository is created in the data dir when there is none, so a new
 * appliance can back something up at once.
 */
import path from 'node:path';
import { SECRET_LABELS, identityColumns } from '@vaultline/appliance';
import { sealSecret, type VaultlineEnv } from '@vaultline/config';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { Repository, RepositoryError, type RepositoryIdentity } from '@vaultline/repository';
import type { VCenterConnector } from './vcenter-connector.ts';
import { sealSecretsForTransporters } from './transporter-access.ts';

export async function registerVCenterFromEnv(env: VaultlineEnv, db: Db, connector: VCenterConnector, secretKey: Buffer, log: Logger): Promise<void> {
  const url = env.VAULTLINE_VCENTER_URL;
  if (!url) return;
  if (!env.VAULTLINE_VCENTER_USER || !env.VAULTLINE_VCENTER_PASSWORD) {
    log.warn('VAULTLINE_VCENTER_URL is set without VAULTLINE_VCENTER_USER and VAULTLINE_VCENTER_PASSWORD; not registering it');
    return;
  }
  const isLab = env.VAULTLINE_VCENTER_LAB === '1';
  // The lab vCenter gets a new port and password each run: its one row is kept current.
  const existing = await db.vCenter.findFirst({ where: isLab ? { isLab: true } : { url } });
  const thumbprint = env.VAULTLINE_VCENTER_THUMBPRINT?.toUpperCase() ?? null;
  const conn = { url, username: env.VAULTLINE_VCENTER_USER, password: env.VAULTLINE_VCENTER_PASSWORD, thumbprintSha256: thumbprint, allowHttp: url.startsWith('http:') };
  if (url.startsWith('https:') && !thumbprint) {
    const presented = await connector.probeThumbprint(url);
    log.warn(`not registering ${url}: set VAULTLINE_VCENTER_THUMBPRINT=${presented.sha256} once you have checked it is the vCenter's certificate`);
    return;
  }
  let instanceUuid: string | null;
  try {
    instanceUuid = (await connector.verify(conn)).instanceUuid;
  } catch (err) {
    log.error(`cannot register ${url}: ${(err as Error).message}`);
    return;
  }
  const same = instanceUuid ? await db.vCenter.findUnique({ where: { instanceUuid } }) : null;
  if (same && same.id !== existing?.id) {
    log.warn(`not registering ${url}: it is the vCenter already registered as ${same.name} (${same.url}, instance UUID ${instanceUuid})`);
    return;
  }
  const data = {
    url,
    username: conn.username,
    passwordSealed: sealSecret(secretKey, SECRET_LABELS.vcenterPassword, conn.password),
    thumbprintSha256: thumbprint,
    instanceUuid,
    isLab,
  };
  if (existing) {
    await db.vCenter.update({ where: { id: existing.id }, data });
  } else {
    const name = isLab ? 'Lab vCenter' : new URL(url).hostname;
    await db.vCenter.create({ data: { name, ...data } });
    log.info({ url }, 'vCenter registered from the environment');
  }
  await sealSecretsForTransporters(db, secretKey);
}

export async function ensureDefaultRepository(db: Db, dataDir: string, log: Logger): Promise<void> {
  if ((await db.repository.count()) > 0) return;
  const location = path.join(dataDir, 'repository');
  let identity: RepositoryIdentity | null = null;
  try {
    identity = await Repository.init(location);
  } catch (err) {
    if (!(err instanceof RepositoryError && err.code === 'ALREADY_EXISTS')) throw err;
  }
  // An existing one is recorded at its first open (services/repositories.ts).
  await db.repository.create({ data: { name: 'Local repository', kind: 'local', location, ...(identity ? identityColumns(identity) : {}) } });
  log.info({ location }, 'created the default local repository');
}
