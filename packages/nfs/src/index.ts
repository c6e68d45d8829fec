export { NfsServer, type NfsLogger, type NfsServerAddress, type NfsServerOptions } from './server.ts';
export type { BaseFile, ExportCounters, ExportOptions } from './tree.ts';
