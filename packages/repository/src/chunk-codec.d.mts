export type ChunkHash = 'sha256' | 'hmac-sha256' | 'blake3' | 'blake3-keyed';
export declare const CHUNK_HASHES: readonly ChunkHash[];
export declare function makeChunkHasher(algorithm: ChunkHash, idKey: Uint8Array | null): (data: Uint8Array) => string;
/** Chunk ids from a list of raw 32-byte ids, plus hex ids added later. */
export declare class KnownIds {
  constructor(ids: Buffer);
  has(hex: string): boolean;
  add(hex: string): void;
}
