/**
 * pino everywhere. Passwords, cookies, keys and tokens are redacted by path, and
 * credentials embedded in URLs (postgresql://user:pass@…) are stripped from any
 * string field before it is written.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

export const REDACT_PATHS = [
  'password',
  '*.password',
  'passphrase',
  '*.passphrase',
  'secret',
  '*.secret',
  'privateKey',
  '*.privateKey',
  'token',
  '*.token',
  'cookie',
  '*.cookie',
  'req.headers.cookie',
  'req.headers.authorization',
  'res.headers["set-cookie"]',
  'headers.cookie',
  'headers.authorization',
  'newPassword',
  '*.newPassword',
  'currentPassword',
  '*.currentPassword',
];

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)([^/@\s:]*)(:[^/@\s]*)?@/gi;

/** Removes user:password from every URL in a string. */
export function stripUrlCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1***@');
}

export interface CreateLoggerOptions {
  name: string;
  level?: string;
  /** Write here instead of stdout (tests). */
  destination?: NodeJS.WritableStream;
  pretty?: boolean;
  /**
   * Also write every line at debug level and above, as JSON, to this file (appended; its folder is made):
   * the terminal keeps `level`, readable, while the file keeps what support needs.
   */
  file?: string | undefined;
}

/** pino's levels by rank, to pick the lower of the terminal's and the file's. */
const RANK: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

export function createLogger(opts: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    name: opts.name,
    level: opts.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    hooks: {
      streamWrite: (line) => stripUrlCredentials(line),
    },
  };
  if (opts.destination) return pino(options, opts.destination as pino.DestinationStream);
  if (opts.file) {
    const level = opts.level ?? 'info';
    const fileLevel = (RANK[level] ?? 30) < RANK.debug! ? level : 'debug';
    const terminal: pino.TransportTargetOptions = opts.pretty
      ? { target: 'pino-pretty', level, options: { colorize: true, ignore: 'pid,hostname' } }
      : { target: 'pino/file', level, options: { destination: 1 } };
    const targets: pino.TransportTargetOptions[] = [...(level === 'silent' ? [] : [terminal]), { target: 'pino/file', level: fileLevel, options: { destination: opts.file, mkdir: true, append: true } }];
    return pino({ ...options, level: fileLevel }, pino.transport({ targets }) as pino.DestinationStream);
  }
  if (opts.pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname' } } });
  }
  return pino(options);
}

/** A logger that keeps its lines in memory (tests assert on them, e.g. that no secret was logged). */
export function memoryLogger(name: string, level = 'debug'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = {
    write(chunk: string) {
      lines.push(String(chunk));
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  return { log: createLogger({ name, level, destination }), lines };
}
