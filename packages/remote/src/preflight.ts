/**
 * What a host must offer before a Transporter bundle is copied to it: Linux, the
 * bundle's CPU architecture, glibc at least as new as the bundle needs, tar and
 * gzip, and a writable install folder with room for the unpacked bundle. All of
 * it is asked in one round trip and judged here, so each refusal names the
 * reason; the write test leaves nothing behind.
 */
import { compareVersions, type TransporterBundle } from './bundle.ts';
import { RemoteProblem, shq, type RemoteSession } from './ssh.ts';

export interface HostFacts {
  os: string;
  machine: string;
  uid: number;
  user: string;
  home: string;
  /** e.g. "2.36"; null when the host has no glibc (musl, BusyBox). */
  glibc: string | null;
  systemd: boolean;
  tools: { tar: boolean; gzip: boolean; setsid: boolean };
}

export interface InstallFolderFacts {
  folder: string;
  /** The nearest existing folder at or above it (where the free space is measured). */
  existing: string;
  freeBytes: number;
  writable: boolean;
  writeError: string;
  isDir: boolean;
  /** Whether the folder already exists (so removing must keep it). */
  existed: boolean;
}

/** Extra room on top of the unpacked bundle: data folder, logs, tsx's cache. */
export const SPACE_MARGIN_BYTES = 64 * 1024 * 1024;

const FACTS_SCRIPT = `LC_ALL=C; export LC_ALL
echo "os=$(uname -s 2>/dev/null)"
echo "machine=$(uname -m 2>/dev/null)"
echo "uid=$(id -u 2>/dev/null)"
echo "user=$(id -un 2>/dev/null)"
echo "home=$HOME"
echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null)"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd=1; else echo systemd=0; fi
for c in tar gzip setsid; do if command -v $c >/dev/null 2>&1; then echo "has_$c=1"; else echo "has_$c=0"; fi; done
`;

function kv(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}

export function parseHostFacts(stdout: string): HostFacts {
  const m = kv(stdout);
  const glibc = /(\d+\.\d+)/.exec(m.get('glibc') ?? '')?.[1] ?? null;
  return {
    os: m.get('os') ?? '',
    machine: m.get('machine') ?? '',
    uid: Number(m.get('uid') ?? -1),
    user: m.get('user') ?? '',
    home: m.get('home') ?? '',
    glibc,
    systemd: m.get('systemd') === '1',
    tools: { tar: m.get('has_tar') === '1', gzip: m.get('has_gzip') === '1', setsid: m.get('has_setsid') === '1' },
  };
}

export async function hostFacts(session: RemoteSession): Promise<HostFacts> {
  const r = await session.sh(FACTS_SCRIPT);
  return parseHostFacts(r.stdout);
}

/** Default install folder: /opt/vaultline-transporter as root, ~/.vaultline-transporter otherwise. */
export function defaultInstallDir(facts: HostFacts): string {
  return facts.uid === 0 ? '/opt/vaultline-transporter' : `${facts.home.replace(/\/+$/, '')}/.vaultline-transporter`;
}

/** Refuses a host the bundle cannot run on, naming why. */
export function judgePlatform(host: string, facts: HostFacts, bundle: Pick<TransporterBundle, 'machine' | 'glibcRequired'>): void {
  if (facts.os !== 'Linux') {
    throw new RemoteProblem('platform', `${host} is not a Linux host (it reports ${facts.os ? `"${facts.os}"` : 'no uname'}); remote Transporters run on Linux only`, { os: facts.os });
  }
  if (facts.machine !== bundle.machine) {
    throw new RemoteProblem('platform', `${host} has an unsupported CPU architecture: ${facts.machine || 'unknown'}; this appliance ships Transporters for ${bundle.machine}`, { machine: facts.machine });
  }
  if (!facts.glibc) {
    throw new RemoteProblem('platform', `${host} has no GNU C library (musl or BusyBox?); the Transporter needs glibc ${bundle.glibcRequired} or newer`);
  }
  if (compareVersions(facts.glibc, bundle.glibcRequired) < 0) {
    throw new RemoteProblem('platform', `${host} has glibc ${facts.glibc}; the Transporter needs glibc ${bundle.glibcRequired} or newer (e.g. Debian 12, Ubuntu 22.04, RHEL 9)`, { glibc: facts.glibc });
  }
  const missing = (['tar', 'gzip'] as const).filter((t) => !facts.tools[t]);
  if (missing.length) throw new RemoteProblem('platform', `${host} lacks ${missing.join(' and ')}, needed to unpack the Transporter; install ${missing.join(' and ')} there`);
  if (facts.uid < 0 || !facts.user) throw new RemoteProblem('platform', `${host} did not answer a POSIX shell (id, uname); is the login shell sh-compatible?`);
}

/** Free space and write permission of the install folder; creates and removes only what it tests with. */
export async function installFolderFacts(session: RemoteSession, folder: string): Promise<InstallFolderFacts> {
  const script = `LC_ALL=C; export LC_ALL
D=${shq(folder)}
p=$D
while [ ! -e "$p" ]; do p=$(dirname "$p"); done
echo "existing=$p"
echo "avail_kb=$(df -Pk "$p" 2>/dev/null | awk 'NR==2 {print $4}')"
if [ -e "$D" ]; then echo existed=1; else echo existed=0; fi
if [ -e "$D" ] && [ ! -d "$D" ]; then echo isdir=0; else echo isdir=1; fi
if [ -d "$D" ]; then
  t="$D/.vaultline-write-test.$$"
  if err=$( { : > "$t"; } 2>&1 ); then rm -f "$t"; echo writable=1; else echo writable=0; echo "error=$err" | head -n 1; fi
elif [ -e "$D" ]; then
  echo writable=0
else
  if err=$(mkdir -p "$D" 2>&1); then
    echo writable=1
    q=$D
    while [ "$q" != "$p" ]; do rmdir "$q" 2>/dev/null; q=$(dirname "$q"); done
  else
    echo writable=0; echo "error=$err" | head -n 1
  fi
fi
`;
  const m = kv((await session.sh(script)).stdout);
  return {
    folder,
    existing: m.get('existing') ?? folder,
    freeBytes: Number(m.get('avail_kb') ?? 0) * 1024,
    writable: m.get('writable') === '1',
    // "sh: 1: cannot create /x/…: Permission denied" / "mkdir: cannot create directory '/x': Permission denied" → the reason.
    writeError: (m.get('error') ?? '').split(': ').pop() ?? '',
    isDir: m.get('isdir') !== '0',
    existed: m.get('existed') === '1',
  };
}

export function judgeInstallFolder(host: string, user: string, f: InstallFolderFacts, neededBytes: number): void {
  if (!f.isDir) throw new RemoteProblem('permission', `${f.folder} on ${host} exists and is not a folder; choose another install folder`);
  if (!f.writable) {
    throw new RemoteProblem('permission', `${user} has no write permission in ${f.folder} on ${host}${f.writeError ? ` (${f.writeError})` : ''}; choose a folder ${user} owns, or sign in as root`);
  }
  if (f.freeBytes < neededBytes) {
    throw new RemoteProblem(
      'space',
      `not enough disk space in ${f.folder} on ${host}: ${mib(f.freeBytes)} free in ${f.existing}, the Transporter needs ${mib(neededBytes)}`,
      { freeBytes: f.freeBytes, neededBytes },
    );
  }
}

export function mib(bytes: number): string {
  return `${Math.round(bytes / (1024 * 1024))} MiB`;
}
