export type ChunkHash = 'sha256' | 'hmac-sha256' | 'blake3' | 'blake3-keyed';
export declare const CHUNK_HASHES: readonly ChunkHash[];
export declare function makeChunkHasher(algorithm: ChunkHash, idKey: Uint8Array | null): (data: Uint8Array) => string;
