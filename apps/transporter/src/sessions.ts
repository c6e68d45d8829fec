/**
 * What the handlers get from the vSphere connector (adapters/vsphere-port.ts): a vCenter as its row names it,
 * and one session per run with the engine's port for it. Shared by the handlers and the adapter, so neither
 * imports the other.
 */
import type { RestorePort, TransporterFacts, VSpherePort } from '@vaultline/core';

export interface VCenterRow {
  id: string;
  url: string;
  username: string;
  /** Not read by a remote Transporter (its database role may not). */
  passwordSealed?: string;
  thumbprintSha256: string | null;
}

export interface VSphereSession {
  port: VSpherePort;
  /** Facts about this Transporter in that vCenter (its proxy VM, HTTPS or not). */
  facts: Omit<TransporterFacts, 'datastoreHosts' | 'blockDevices'>;
  close(): Promise<void>;
}

export interface RestoreSession {
  port: RestorePort;
  /** This Transporter's VM in that vCenter, for HotAdd. */
  facts: Pick<TransporterFacts, 'proxyVm' | 'proxyVmUuid'>;
  close(): Promise<void>;
}
