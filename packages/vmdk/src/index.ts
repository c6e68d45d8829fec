/**
 * @vaultline/vmdk — VMDK descriptors, readers for every base-disk layout we meet
 * (monolithicFlat, vmfs, monolithicSparse, twoGbMaxExtentSparse, streamOptimized,
 * raw) and ESXi snapshot chains (vmfsSparse / seSparse deltas, read and written)
 * behind one `DiskImageReader`, a streaming streamOptimized writer, a
 * forward-only streamOptimized decoder (vSphere HttpNfcLease exports), and
 * OVF descriptors / OVA packages of a whole VM built on it.
 */
export * from './errors.ts';
export type { ByteRange, DiskImageReader } from './types.ts';
export {
  ADAPTER_TYPES,
  EXTENT_TYPES,
  NO_PARENT_CID,
  adapterTypeFor,
  ddbAdapterType,
  ddbUuid,
  descriptorSectors,
  formatDescriptor,
  geometryFor,
  parseDescriptor,
} from './descriptor.ts';
export type { AdapterType, DescriptorExtent, ExtentAccess, ExtentType, VmdkDescriptor } from './descriptor.ts';
export { openVmdk, openVmdkChain } from './open.ts';
export type { ChainLinkInfo } from './chain.ts';
export { DeltaExtent, SeSparseExtent, VmfsSparseExtent } from './delta-extent.ts';
export type { DeltaFormat, GrainRun, GrainState } from './delta-extent.ts';
export { buildDeltaLink, seSparseLayout, writeDeltaLink } from './delta-writer.ts';
export type { DeltaLink, DeltaLinkOptions, DeltaOp } from './delta-writer.ts';
export { localFiles } from './image-file.ts';
export type { FileOpener, RandomAccessFile } from './image-file.ts';
export type { ImageFormat, OpenOptions, VmdkImage } from './open.ts';
export { buildDescriptor, descriptorForFlat } from './create.ts';
export type { DescriptorOptions } from './create.ts';
export { rawChunks, streamOptimizedChunks, writeRaw, writeStreamOptimized } from './writer.ts';
export type { DiskSource, StreamOptimizedOptions } from './writer.ts';
export { StreamOptimizedReader, readStreamOptimized } from './stream-reader.ts';
export type { StreamGrain, StreamOptimizedInfo, StreamOptimizedReadOptions } from './stream-reader.ts';
export { GD_AT_END, parseSparseHeader } from './sparse-header.ts';
export type { SparseHeader } from './sparse-header.ts';
export { OVF_DEFAULTS, STREAM_OPTIMIZED_FORMAT, diskControllers, ovfDescriptor, parseOvfHardware, virtualSystemType } from './ovf.ts';
export type { OvfController, OvfControllerKind, OvfDescriptorOptions, OvfDisk, OvfDiskFile, OvfHardware, OvfNic } from './ovf.ts';
export { DEFAULT_OVA_CHUNK_SIZE, createOva, ovaBaseName, writeOva } from './ova.ts';
export type { Ova, OvaDisk, OvaLayout, OvaOptions } from './ova.ts';
export { TAR_BLOCK, USTAR_MAX_SIZE, tarEnd, tarHeader, tarPadding } from './tar.ts';
export type { TarEntry } from './tar.ts';
