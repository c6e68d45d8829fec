export { BuildError, run, treeDigest, fileSha256 } from './exec.ts';
export { stageApp, stageInto, appVersion, STAGED_APPS } from './stage.ts';
export { debianTree, APPLIANCE_PACKAGES, CONTAINER_PACKAGES, SUITE, DEFAULT_MIRROR } from './debian.ts';
export type { DebianTree, Flavour } from './debian.ts';
export { biosBootSectors, earlyConfig, grubConfig } from './grub.ts';
export { buildDiskImage, BIOS_PART, ESP_PART, ROOT_START, KERNEL_CMDLINE, ENABLED_UNITS } from './disk.ts';
export { applianceHardware, allocatedRanges, writeVmdk, writeApplianceOva, APPLIANCE_HW, APPLIANCE_EXTRA_CONFIG } from './appliance-ovf.ts';
export { buildOva } from './ova.ts';
export type { OvaBuild, OvaOptions } from './ova.ts';
