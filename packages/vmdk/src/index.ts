/**
 * @vaultline/vmdk — VMDK descriptors, readers for every base-disk layout we meet
 * (monolithicFlat, vmfs, monolithicSparse, twoGbMaxExtentSparse, streamOptimized,
 * raw) behind one `DiskImageReader`, and a streaming streamOptimized writer.
 */
export * from './errors.ts';
export type { ByteRange, DiskImageReader } from './types.ts';
export {
  EXTENT_TYPES,
  NO_PARENT_CID,
  ddbAdapterType,
  ddbUuid,
  descriptorSectors,
  formatDescriptor,
  geometryFor,
  parseDescriptor,
} from './descriptor.ts';
export type { AdapterType, DescriptorExtent, ExtentAccess, ExtentType, VmdkDescriptor } from './descriptor.ts';
export { openVmdk } from './open.ts';
export { localFiles } from './image-file.ts';
export type { FileOpener, RandomAccessFile } from './image-file.ts';
export type { ImageFormat, OpenOptions, VmdkImage } from './open.ts';
export { buildDescriptor, descriptorForFlat } from './create.ts';
export type { DescriptorOptions } from './create.ts';
export { rawChunks, streamOptimizedChunks, writeRaw, writeStreamOptimized } from './writer.ts';
export type { DiskSource, StreamOptimizedOptions } from './writer.ts';
export { GD_AT_END, parseSparseHeader } from './sparse-header.ts';
export type { SparseHeader } from './sparse-header.ts';
