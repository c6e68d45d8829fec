// Output of the front door: its messages, and how it stops on a failure.
export const say = (msg) => process.stdout.write(`\x1b[1mvaultline\x1b[0m ${msg}\n`);
export class SetupError extends Error {}

export function fail(message) {
  process.stderr.write(`\nvaultline: ${message}\n`);
  process.exit(1);
}
