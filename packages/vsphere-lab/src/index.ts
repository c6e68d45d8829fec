export {
  startLab,
  createDemoInventory,
  sha256File,
  cleanupRunDir,
  loopDevicesUnder,
  mountsUnder,
  PROXY_VM_NAME,
} from './lab.ts';
export type { Lab, LabOptions, LabDiskSpec, LabVmSpec, LabDisk, LabVm, WriteOp, LabDatastore } from './lab.ts';
export { buildLabServer, ensureToolchain } from './build.ts';
export { patternBytes } from './patterns.ts';
export type { Pattern } from './patterns.ts';
