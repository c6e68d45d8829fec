export {
  startLab,
  createDemoInventory,
  sha256File,
  cleanupRunDir,
  loopDevicesUnder,
  mountsUnder,
  PROXY_VM_NAME,
  connectLab,
  labState,
} from './lab.ts';
export { labUp, labDown, labStatus, readLabState, sharedLab } from './control.ts';
export type { Lab, LabOptions, LabDiskSpec, LabVmSpec, LabDisk, LabVm, WriteOp, LabDatastore, LabState } from './lab.ts';
export { buildLabServer, ensureToolchain } from './build.ts';
export { patternBytes } from './patterns.ts';
export type { Pattern } from './patterns.ts';
