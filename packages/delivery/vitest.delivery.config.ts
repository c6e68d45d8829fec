import { defineConfig } from 'vitest/config';

// `npm test -- delivery`: the OVA appliance and the Docker image, built and run for
// real (debootstrap, QEMU, podman). Slow (minutes; see packages/delivery/README.md),
// so not part of the default Vitest run; .ci/run calls it after `npm test`.
export default defineConfig({
  test: {
    name: 'delivery',
    root: import.meta.dirname,
    include: ['delivery-test/**/*.test.ts'],
    testTimeout: 30 * 60_000,
    hookTimeout: 60 * 60_000,
    // The OVA's VM and the image build each want the whole machine: one file at a time.
    fileParallelism: false,
  },
});
