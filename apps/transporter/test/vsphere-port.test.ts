import { describe, expect, it } from 'vitest';

describe('proxy VM identity', () => {
  it('swaps the first three UUID fields of an SMBIOS UUID and back', async () => {
    const { swapUuidEndianness } = await import('../src/adapters/vsphere-port.ts');
    expect(swapUuidEndianness('00112233-4455-6677-8899-aabbccddeeff')).toBe('33221100-5544-7766-8899-aabbccddeeff');
    expect(swapUuidEndianness(swapUuidEndianness('4210c8d2-1f2e-3d4c-5b6a-798877665544'))).toBe('4210c8d2-1f2e-3d4c-5b6a-798877665544');
  });
});
