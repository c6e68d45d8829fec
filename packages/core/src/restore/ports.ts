/**
 * What a restore needs from the Transporter's machine: a hot-added disk opened
 * for writing. Only the empty disk a restore created itself, attached in a
 * persistent mode, is ever opened this way.
 */
export interface HotAddedDiskWriter {
  readonly device: string;
  readonly capacity: number;
  /** Positional write of the whole buffer. */
  write(offset: number, data: Buffer): Promise<void>;
  /** fsync, then drop the device's cached pages so later reads come from the disk itself. */
  flush(): Promise<void>;
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

export interface RestoreDevices {
  canUseBlockDevices(): Promise<boolean>;
  /** Waits for a disk hot-added in a persistent mode to appear and opens it read-write. */
  openHotAddedForWrite(diskUuid: string, capacity: number): Promise<HotAddedDiskWriter>;
  waitGone(diskUuid: string): Promise<void>;
}
