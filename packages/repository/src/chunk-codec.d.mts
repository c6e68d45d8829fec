export type ChunkHash = 'sha256' | 'hmac-sha256' | 'blake3' | 'blake3-keyed';
export declare const CHUNK_HASHES: readonly ChunkHash[];
export declare function makeChunkHasher(algorithm: ChunkHash, idKey: Uint8Array | null): (data: Uint8Array) => string;
/** Chunk ids from a list of raw 32-byte ids, plus hex ids added later. */
export declare class KnownIds {
  constructor(ids: Buffer);
  has(hex: string): boolean;
  add(hex: string): void;
}
export declare function sealBlob(plain: Uint8Array, encKey: Uint8Array, aad: Uint8Array | null, out: Buffer, dst: number): number;
export declare function openBlob(stored: Buffer, encKey: Uint8Array, aad: Uint8Array | null): Buffer;
export declare function mustRehashIds(encrypted: boolean, bindsIds: boolean): boolean;
export declare const ID_MISMATCH: string;
export declare function blobDecoder<D>(zstd: { DCtx: new () => D }, rehashIds: boolean): D;
