import type { InventoryTree, InventoryVm, PlacementTargets } from '@vaultline/contracts';

/** What the Director needs from a vCenter; implemented over @vaultline/vsphere. */
export interface VCenterConnection {
  url: string;
  username: string;
  password: string;
  thumbprintSha256: string | null;
  allowHttp: boolean;
}

export interface VCenterConnector {
  /** The certificate a server presents, for the operator to confirm on first contact. */
  probeThumbprint(url: string): Promise<{ sha256: string; sha1: string }>;
  /**
   * Signs in once and out again; throws a readable error when it cannot. `instanceUuid` tells one vCenter from
   * another; for a standalone ESXi host (which has none) it is ESXI_HOST_IDENTITY and the host's hardware UUID.
   */
  verify(conn: VCenterConnection): Promise<{ product: string; apiVersion: string; instanceUuid: string | null }>;
  listVms(conn: VCenterConnection): Promise<InventoryVm[]>;
  /** The VMs (templates left out) with the containers that hold them, and the containers (datacenters, clusters, hosts, VM folders). */
  inventory(conn: VCenterConnection): Promise<InventoryTree>;
  /** Hosts, VM folders, resource pools, datastores and networks: where a restored VM can go. */
  placementTargets(conn: VCenterConnection): Promise<PlacementTargets>;
}

/** An error the operator can act on (wrong password, unreachable, thumbprint changed). */
export class VCenterProblem extends Error {
  override name = 'VCenterProblem';
  constructor(
    message: string,
    readonly kind: 'login' | 'unreachable' | 'thumbprint' | 'tls' | 'other',
  ) {
    super(message);
  }
}

/** Prefix of the identity recorded for a standalone ESXi host (its hardware UUID follows). */
export const ESXI_HOST_IDENTITY = 'esxi-host:';
