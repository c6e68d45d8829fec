/** A lab's state as `lab up` records it, and a Lab handle made from it again. */
import fs from 'node:fs';
import path from 'node:path';
import { LabImpl } from './lab.ts';
import type { Lab, LabDatastore, LabVm } from './types.ts';

/** What `lab up` records in .vaultline/lab/state.json (enough to reconnect and to clean up). */
export interface LabState {
  url: string;
  username: string;
  password: string;
  thumbprintSha256: string;
  thumbprintSha1: string;
  certFile: string;
  datacenter: string;
  dir: string;
  run: string;
  byIdDir: string;
  datastores: LabDatastore[];
  proxyVm: LabVm;
  pid: number;
}

export function labState(lab: Lab): LabState {
  const impl = lab as LabImpl;
  return {
    url: lab.url,
    username: lab.username,
    password: lab.password,
    thumbprintSha256: lab.thumbprintSha256,
    thumbprintSha1: lab.thumbprintSha1,
    certFile: path.join(lab.dir, 'tls', 'cert.pem'),
    datacenter: lab.datacenter,
    dir: lab.dir,
    run: impl.run,
    byIdDir: lab.byIdDir,
    datastores: lab.datastores,
    proxyVm: lab.proxyVm,
    pid: lab.pid,
  };
}

/** A Lab handle for a server started earlier (e.g. by `lab up`). stop() stops it and cleans up. */
export function connectLab(state: LabState): Lab {
  const lab = new LabImpl({ username: state.username, password: state.password }, state.dir, false);
  lab.run = state.run;
  lab.url = state.url;
  lab.pid = state.pid;
  lab.certPem = fs.readFileSync(state.certFile, 'utf8');
  lab.thumbprintSha256 = state.thumbprintSha256;
  lab.thumbprintSha1 = state.thumbprintSha1;
  lab.datacenter = state.datacenter;
  lab.byIdDir = state.byIdDir;
  lab.datastores = state.datastores;
  lab.proxyVm = state.proxyVm;
  return lab;
}
