export declare const ENTROPY_SAMPLE_BYTES: number;
export declare function byteEntropy(b: Uint8Array): number;
export declare function sampleEntropy(blob: Uint8Array): number;
