/**
 * Test child for the crash case of vmfs-partitions.test.ts: opens a file on a
 * LUN through the SAN path, prints the cleanup descriptor openSan hands to the
 * journal (one JSON line, "recorded …"), then "open" once the file is open, and
 * waits to be killed (kill -9: nothing of the close path runs).
 * argv: byIdDir mountDir naa device partition fileName capacity
 */
import { memoryLogger } from '@vaultline/logger';
import { createLocalDevices } from '../src/adapters/devices.ts';

const [byIdDir, mountDir, naa, device, partition, fileName, capacity] = process.argv.slice(2) as [string, string, string, string, string, string, string];
const devices = createLocalDevices({ byIdDir, mountDir, log: memoryLogger('san-child').log });
const reader = await devices.openSan(naa, device, Number(partition), fileName, Number(capacity), async (cleanup) => {
  process.stdout.write(`recorded ${JSON.stringify(cleanup)}\n`);
});
await reader.read(0, Number(capacity));
process.stdout.write('open\n');
setInterval(() => undefined, 60_000);
