/**
 * Installing, starting, inspecting and removing a Transporter on a remote host.
 *
 * Layout under the install folder B (/opt/vaultline-transporter as root,
 * ~/.vaultline-transporter otherwise):
 *   B/<version>/          the unpacked bundle (node, app/, bin/, BUNDLE.json)
 *   B/transporter.env     mode 0600: its own database/Redis logins and key pair, id, name
 *   B/tls-ca.pem          the CA that signed the appliance's PostgreSQL and Redis certificates
 *   B/data/, B/tmp/       the Transporter's data folder and TMPDIR (mode 0700)
 *   B/installed           what is installed (version, digest, supervisor, unit)
 *   B/.vaultline-transporter   marker: which Transporter owns B, whether we created B
 *   B/supervisor.pid, B/transporter.pid, B/transporter.log   (no systemd only)
 * With systemd (signed in as root) the unit is
 * /etc/systemd/system/vaultline-transporter-<id>.service.
 *
 * Secrets reach the host on stdin only (never on a command line), and the
 * env file is written with umask 077 before anything reads it.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { TransporterBundle } from './bundle.ts';
import type { HostFacts, InstallFolderFacts } from './preflight.ts';
import { lastLines, RemoteProblem, shq, type RemoteSession } from './ssh.ts';

export type Supervisor = 'systemd' | 'process';

export interface InstallSpec {
  transporterId: string;
  installDir: string;
  /** Variables of the env file (DATABASE_URL, REDIS_URL, VAULTLINE_*). */
  env: Record<string, string>;
  /** PEM written to B/tls-ca.pem (TLS_CA_FILE), which the env's URLs name to verify the servers with. */
  tlsCa?: string;
}

/** The CA certificate's file name in the install folder. */
export const TLS_CA_FILE = 'tls-ca.pem';

export interface InstalledState {
  version: string;
  digest: string;
  supervisor: Supervisor;
  unit: string | null;
  installedAt: string;
}

export interface RemoteProcessState {
  installed: InstalledState | null;
  running: boolean;
  /** Pid of the Transporter process (node) on the host. */
  pid: number | null;
  /** The folder the running process was started from. */
  runningFrom: string | null;
}

const ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$/;

export function unitName(transporterId: string): string {
  return `vaultline-transporter-${transporterId}.service`;
}

/** KEY="value" lines, read alike by systemd's EnvironmentFile= and node --env-file. */
export function renderEnvFile(vars: Record<string, string>): string {
  const lines = ['# Written by the Vaultline Director. Mode 0600: holds the appliance key.'];
  for (const [key, value] of Object.entries(vars)) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(key)) throw new Error(`bad environment variable name ${key}`);
    if (/["\\\n\r$`]/.test(value)) throw new Error(`${key} holds a character the env file cannot carry (", \\, $, \` or a line break)`);
    lines.push(`${key}="${value}"`);
  }
  return lines.join('\n') + '\n';
}

function unitFile(spec: InstallSpec, versionDir: string, name: string): string {
  return [
    '[Unit]',
    `Description=Vaultline Transporter ${name} (${spec.transporterId})`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${versionDir}/bin/transporter`,
    'Restart=always',
    'RestartSec=5',
    'KillSignal=SIGTERM',
    // A stopping Transporter cancels its running VMs cleanly (snapshots removed, disks detached).
    'TimeoutStopSec=120',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

function kv(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

/** Shell helpers shared by the scripts: alive PID (one of ours, started from B), stop. */
function prelude(base: string): string {
  return `LC_ALL=C; export LC_ALL
B=${shq(base)}
alive() { [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\\000' ' ' < "/proc/$1/cmdline" | grep -qF -- "$B/"; }
stop_process() {
  sp=$(cat "$B/supervisor.pid" 2>/dev/null); tp=$(cat "$B/transporter.pid" 2>/dev/null)
  if alive "$sp"; then kill -TERM "$sp" 2>/dev/null; elif alive "$tp"; then kill -TERM "$tp" 2>/dev/null; fi
  i=0
  while { alive "$sp" || alive "$tp"; } && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  if alive "$tp"; then kill -KILL "$tp" 2>/dev/null; echo "killed=$tp"; fi
  if alive "$sp"; then kill -KILL "$sp" 2>/dev/null; fi
  rm -f "$B/supervisor.pid" "$B/transporter.pid"
}
`;
}

function parseInstalled(text: string): InstalledState | null {
  const m = kv(text);
  const version = m.get('version');
  if (!version) return null;
  return {
    version,
    digest: m.get('digest') ?? '',
    supervisor: m.get('supervisor') === 'systemd' ? 'systemd' : 'process',
    unit: m.get('unit') || null,
    installedAt: m.get('installedAt') ?? '',
  };
}

/** What is installed in `base` and whether it runs. */
export async function remoteState(session: RemoteSession, base: string, transporterId: string): Promise<RemoteProcessState> {
  const unit = unitName(transporterId);
  const script = `${prelude(base)}
if [ -f "$B/installed" ]; then sed 's/^/installed./' "$B/installed"; fi
sup=$(sed -n 's/^supervisor=//p' "$B/installed" 2>/dev/null)
p=
if [ "$sup" = systemd ]; then
  mp=$(systemctl show -p MainPID --value ${shq(unit)} 2>/dev/null)
  [ "$(systemctl is-active ${shq(unit)} 2>/dev/null)" = active ] && [ -n "$mp" ] && [ "$mp" != 0 ] && p=$mp
else
  tp=$(cat "$B/transporter.pid" 2>/dev/null)
  alive "$tp" && p=$tp
fi
if [ -n "$p" ]; then echo "pid=$p"; [ -r "/proc/$p/exe" ] && echo "exe=$(readlink "/proc/$p/exe")"; fi
`;
  const m = kv((await session.sh(script)).stdout);
  const installedLines = [...m.entries()].filter(([k]) => k.startsWith('installed.')).map(([k, v]) => `${k.slice('installed.'.length)}=${v}`);
  const pid = m.get('pid') ? Number(m.get('pid')) : null;
  const exe = m.get('exe') ?? null;
  return { installed: parseInstalled(installedLines.join('\n')), running: pid !== null, pid, runningFrom: exe ? exe.replace(/\/node$/, '') : null };
}

export interface DeployResult {
  version: string;
  digest: string;
  installDir: string;
  versionDir: string;
  supervisor: Supervisor;
  unit: string | null;
  pid: number | null;
  /** Version folders of earlier installs that were removed. */
  replaced: string[];
}

/**
 * Copies the bundle (streamed as a gzipped tar into `tar -x` over SSH), checks
 * the unpacked Node binary runs there, writes the env file, switches to the new
 * version folder and (re)starts the Transporter. A failure before the switch
 * removes what this call made; a first install that fails leaves nothing.
 */
export async function deployBundle(
  session: RemoteSession,
  opts: { bundle: TransporterBundle; facts: HostFacts; folder: InstallFolderFacts; spec: InstallSpec; name: string },
): Promise<DeployResult> {
  const { bundle, facts, spec } = opts;
  if (!ID_RE.test(spec.transporterId)) throw new Error(`bad Transporter id ${spec.transporterId}`);
  if (!VERSION_RE.test(bundle.version)) throw new Error(`bad version ${bundle.version}`);
  const base = spec.installDir.replace(/\/+$/, '');
  const host = session.target.host;
  const versionDir = `${base}/${bundle.version}`;
  const staging = `${base}/.staging-${randomBytes(4).toString('hex')}`;
  const supervisor: Supervisor = facts.uid === 0 && facts.systemd ? 'systemd' : 'process';
  const unit = supervisor === 'systemd' ? unitName(spec.transporterId) : null;
  const envText = renderEnvFile(spec.env);

  // 1. The folder and its owner marker. A folder holding another Transporter is refused.
  const marker = await session.sh(`${prelude(base)}
if [ -f "$B/.vaultline-transporter" ]; then sed -n 's/^transporter=//p' "$B/.vaultline-transporter"; fi`);
  const owner = marker.stdout.trim();
  if (owner && owner !== spec.transporterId) {
    throw new RemoteProblem('permission', `${base} on ${host} already holds Transporter ${owner}; choose another install folder`);
  }
  const fresh = !(await remoteState(session, base, spec.transporterId)).installed;
  await session.shOk(
    `${prelude(base)}
mkdir -p "$B" || exit 1
[ -f "$B/.vaultline-transporter" ] || printf 'transporter=%s\\ncreated=%s\\n' ${shq(spec.transporterId)} ${opts.folder.existed ? '0' : '1'} > "$B/.vaultline-transporter" || exit 1
mkdir ${shq(staging)}`,
    `creating ${base}`,
    'permission',
  );

  const undo = async () => {
    await session.sh(`${prelude(base)}rm -rf ${shq(staging)}`).catch(() => undefined);
    if (fresh) await removeFiles(session, base, spec.transporterId).catch(() => undefined);
  };

  try {
    // 2. The bundle, streamed; nothing is written outside the staging folder.
    const untar = await session.sh(`cd ${shq(staging)} && tar -xzf - --no-same-owner`, { stdin: createReadStream(bundle.file) });
    if (untar.code !== 0) {
      const why = lastLines(untar.stderr, 3);
      if (/no space|quota/i.test(untar.stderr)) throw new RemoteProblem('space', `not enough disk space in ${base} on ${host} while unpacking the Transporter (${why})`);
      throw new RemoteProblem('install', `unpacking the Transporter into ${base} on ${host} failed: ${why}`);
    }
    // 3. The shipped Node.js must run there (glibc, libstdc++ and the like).
    const smoke = await session.sh(`${shq(`${staging}/node`)} -e 'console.log(process.version)' </dev/null`);
    if (smoke.code !== 0 || smoke.stdout.trim() !== bundle.nodeVersion) {
      throw new RemoteProblem('platform', `the Transporter's Node.js ${bundle.nodeVersion} does not run on ${host}: ${lastLines(smoke.stderr || smoke.stdout, 3)}`);
    }
    // 4. The env file (secrets on stdin, mode 0600 from the start), data and temp folders.
    await session.shOk(
      `umask 077; B=${shq(base)}; mkdir -p "$B/data" "$B/tmp" && cat > "$B/transporter.env.tmp" && chmod 600 "$B/transporter.env.tmp" && mv -f "$B/transporter.env.tmp" "$B/transporter.env"`,
      'writing the env file',
      'install',
      { stdin: Readable.from([Buffer.from(envText)]) },
    );
    if (spec.tlsCa !== undefined) {
      await session.shOk(
        `B=${shq(base)}; cat > "$B/${TLS_CA_FILE}.tmp" && chmod 644 "$B/${TLS_CA_FILE}.tmp" && mv -f "$B/${TLS_CA_FILE}.tmp" "$B/${TLS_CA_FILE}"`,
        'writing the CA certificate',
        'install',
        { stdin: Readable.from([Buffer.from(spec.tlsCa)]) },
      );
    }
  } catch (err) {
    await undo();
    throw err;
  }

  // 5. Switch: stop what runs, put the new version in place, start it.
  const replacedOut = await session.shOk(
    `${prelude(base)}
${unit ? `systemctl stop ${shq(unit)} 2>/dev/null` : ''}
stop_process >/dev/null
for d in "$B"/*/; do
  d=\${d%/}
  [ -f "$d/BUNDLE.json" ] && [ "$d" != ${shq(versionDir)} ] && echo "replaced=$d"
done
rm -rf ${shq(versionDir)} && mv ${shq(staging)} ${shq(versionDir)}`,
    'switching to the new version',
  );
  const replaced = [...replacedOut.matchAll(/^replaced=(.*)$/gm)].map((m) => m[1]!);

  if (unit) {
    await session.shOk(`cat > /etc/systemd/system/${unit}`, 'writing the systemd unit', 'install', { stdin: Readable.from([Buffer.from(unitFile(spec, versionDir, opts.name))]) });
    await session.shOk(`systemctl daemon-reload && systemctl enable ${shq(unit)} >/dev/null 2>&1 && systemctl restart ${shq(unit)}`, 'starting the systemd unit');
  } else {
    await startProcess(session, base, versionDir);
  }
  await session.shOk(
    `B=${shq(base)}; printf 'version=%s\\ndigest=%s\\nsupervisor=%s\\nunit=%s\\ninstalledAt=%s\\n' ${shq(bundle.version)} ${shq(bundle.digest)} ${supervisor} ${shq(unit ?? '')} ${shq(new Date().toISOString())} > "$B/installed"`,
    'recording the install',
  );
  // 6. Earlier versions go only once the new one is in place.
  if (replaced.length) await session.shOk(`${replaced.map((d) => `rm -rf ${shq(d)}`).join('\n')}`, 'removing the earlier version');
  const state = await remoteState(session, base, spec.transporterId);
  return { version: bundle.version, digest: bundle.digest, installDir: base, versionDir, supervisor, unit, pid: state.pid, replaced };
}

/** Starts the supervisor in its own session, detached from SSH; returns once it wrote the Transporter's pid. */
async function startProcess(session: RemoteSession, base: string, versionDir: string): Promise<void> {
  await session.shOk(
    `${prelude(base)}
cd "$B" || exit 1
if command -v setsid >/dev/null 2>&1; then set -- setsid; else set -- nohup; fi
"$@" ${shq(`${versionDir}/bin/supervise`)} >> "$B/transporter.log" 2>&1 < /dev/null &
i=0
while [ ! -s "$B/transporter.pid" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -s "$B/transporter.pid" ] || { echo "the supervisor did not start" >&2; exit 1; }`,
    'starting the Transporter',
  );
}

/** Stops and starts the installed Transporter. */
export async function restartRemote(session: RemoteSession, base: string, transporterId: string): Promise<RemoteProcessState> {
  const state = await remoteState(session, base, transporterId);
  if (!state.installed) throw new RemoteProblem('not_installed', `no Transporter is installed in ${base} on ${session.target.host}; deploy it first`);
  if (state.installed.supervisor === 'systemd') {
    await session.shOk(`systemctl restart ${shq(state.installed.unit ?? unitName(transporterId))}`, 'restarting the systemd unit');
  } else {
    await session.shOk(`${prelude(base)}\nstop_process`, 'stopping the Transporter');
    await startProcess(session, base, `${base}/${state.installed.version}`);
  }
  return remoteState(session, base, transporterId);
}

export interface RemoveResult {
  /** Entries still in the install folder afterwards (not ours), if any. */
  leftOver: string[];
  folderRemoved: boolean;
}

/** Stops the Transporter and deletes everything this module put on the host. */
export async function removeFiles(session: RemoteSession, base: string, transporterId: string): Promise<RemoveResult> {
  const unit = unitName(transporterId);
  const out = await session.shOk(
    `${prelude(base)}
[ -d "$B" ] || { echo gone=1; exit 0; }
owner=$(sed -n 's/^transporter=//p' "$B/.vaultline-transporter" 2>/dev/null)
if [ -n "$owner" ] && [ "$owner" != ${shq(transporterId)} ]; then echo "owner=$owner"; exit 0; fi
if [ -f /etc/systemd/system/${unit} ]; then
  systemctl disable --now ${shq(unit)} >/dev/null 2>&1
  rm -f /etc/systemd/system/${unit}
  systemctl daemon-reload 2>/dev/null
fi
stop_process >/dev/null
for d in "$B"/*/ "$B"/.staging-*/; do
  d=\${d%/}
  case "$d" in "$B"/.staging-*) rm -rf "$d";; *) [ -f "$d/BUNDLE.json" ] && rm -rf "$d";; esac
done
rm -rf "$B/data" "$B/tmp"
rm -f "$B/transporter.env" "$B/transporter.env.tmp" "$B/${TLS_CA_FILE}" "$B/${TLS_CA_FILE}.tmp" "$B/installed" "$B/transporter.log" "$B/supervisor.pid" "$B/transporter.pid"
created=$(sed -n 's/^created=//p' "$B/.vaultline-transporter" 2>/dev/null)
rm -f "$B/.vaultline-transporter"
if [ "$created" = 1 ]; then rmdir "$B" 2>/dev/null && echo gone=1; fi
if [ -d "$B" ]; then ls -A "$B" | head -n 20 | sed 's/^/left=/'; fi`,
    `removing the Transporter from ${base}`,
  );
  const owner = /^owner=(.*)$/m.exec(out)?.[1];
  if (owner) throw new RemoteProblem('permission', `${base} on ${session.target.host} holds Transporter ${owner}, not ${transporterId}; nothing was removed`);
  return { leftOver: [...out.matchAll(/^left=(.*)$/gm)].map((m) => m[1]!), folderRemoved: /^gone=1$/m.test(out) };
}

/** The last lines the Transporter wrote (its log file, or the systemd journal), for a failed start. */
export async function logTail(session: RemoteSession, base: string, transporterId: string, lines = 15): Promise<string> {
  const unit = unitName(transporterId);
  const r = await session.sh(`B=${shq(base)}
if [ "$(sed -n 's/^supervisor=//p' "$B/installed" 2>/dev/null)" = systemd ]; then journalctl -u ${shq(unit)} -n ${lines} --no-pager -o cat 2>&1
else tail -n ${lines} "$B/transporter.log" 2>&1; fi`);
  return r.stdout.trim();
}
