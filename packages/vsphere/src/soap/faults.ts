/**
 * The error hierarchy of the client.
 *
 *   VSphereError
 *   ├─ TransportError            network-level failures (retriable)
 *   │  ├─ ConnectError           refused / unreachable / DNS
 *   │  └─ TimeoutError           a call or a wait exceeded its deadline
 *   ├─ TlsError                  certificate not trusted (not retriable)
 *   │  └─ ThumbprintMismatchError the pinned SHA-256 thumbprint changed
 *   ├─ InsecureTransportError    plain http:// without allowHttp
 *   ├─ ProtocolError             malformed XML, unexpected HTTP status or shape
 *   ├─ HttpError                 a datastore / lease HTTP transfer failed
 *   ├─ ClientSafetyError         the client refused to do something dangerous
 *   └─ VimFault                  a fault reported by vSphere (SOAP fault or task error)
 *      ├─ NotAuthenticated, InvalidLogin, NoPermission
 *      ├─ ManagedObjectNotFound, InvalidPowerState, InvalidState, TaskInProgress
 *      ├─ FileFault ─ FileNotFound, FileLocked, FileAlreadyExists, CannotAccessFile
 *      ├─ InvalidArgument, InvalidRequest, NotSupported, NotImplemented, MethodNotFound
 *      ├─ RequestCanceled, ApplicationQuiesceFault, SystemError, …
 *
 * Messages are meant for operators: they name the call and the object, never
 * a password or a session cookie (nothing secret is ever passed in here).
 */
import type { XmlNode } from './xml.ts';

export abstract class VSphereError extends Error {
  abstract readonly code: string;
  /** Whether repeating the same operation later may succeed. */
  isRetriable(): boolean {
    return false;
  }
}

export class TransportError extends VSphereError {
  readonly code: string = 'TRANSPORT';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransportError';
  }
  override isRetriable(): boolean {
    return true;
  }
}

export class ConnectError extends TransportError {
  override readonly code = 'CONNECT';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConnectError';
  }
}

export class TimeoutError extends TransportError {
  override readonly code = 'TIMEOUT';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TimeoutError';
  }
}

export class TlsError extends VSphereError {
  readonly code: string = 'TLS';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TlsError';
  }
}

export class ThumbprintMismatchError extends TlsError {
  override readonly code = 'THUMBPRINT_MISMATCH';
  constructor(
    readonly host: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `TLS certificate of ${host} does not match the pinned thumbprint: expected SHA-256 ${expected}, ` +
        `server presented ${actual}. If the certificate was replaced on purpose, confirm the new thumbprint.`,
    );
    this.name = 'ThumbprintMismatchError';
  }
}

export class InsecureTransportError extends VSphereError {
  readonly code = 'INSECURE_TRANSPORT';
  constructor(message: string) {
    super(message);
    this.name = 'InsecureTransportError';
  }
}

export class ProtocolError extends VSphereError {
  readonly code = 'PROTOCOL';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtocolError';
  }
}

export class HttpError extends VSphereError {
  readonly code = 'HTTP';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'HttpError';
  }
  override isRetriable(): boolean {
    return this.status >= 500 || this.status === 429 || this.status === 408;
  }
}

export class ClientSafetyError extends VSphereError {
  readonly code = 'SAFETY';
  constructor(message: string) {
    super(message);
    this.name = 'ClientSafetyError';
  }
}

export interface VimFaultInit {
  faultType: string;
  /** faultstring / localizedMessage from the server */
  serverMessage: string;
  /** the SOAP method or task that failed, e.g. "CreateSnapshot_Task on vm-42" */
  context: string;
  detail?: XmlNode | undefined;
}

/** A fault reported by vSphere. `faultType` is the vim type name (e.g. "InvalidPowerState"). */
export class VimFault extends VSphereError {
  readonly code: string = 'VIM_FAULT';
  readonly faultType: string;
  readonly serverMessage: string;
  readonly context: string;
  readonly detail: XmlNode | undefined;
  constructor(init: VimFaultInit, explanation?: string) {
    const msg = init.serverMessage.trim();
    super(`${init.context} failed: ${explanation ?? init.faultType}${msg ? ` (${msg})` : ''}`);
    this.name = init.faultType;
    this.faultType = init.faultType;
    this.serverMessage = msg;
    this.context = init.context;
    this.detail = init.detail;
  }
  /** Text of a child element of the fault detail. */
  detailText(name: string): string | undefined {
    return this.detail?.children.find((c) => c.name === name)?.text;
  }
}

function fault<T extends string>(type: T, explain: (f: VimFault) => string | undefined, retriable = false) {
  return class extends VimFault {
    constructor(init: VimFaultInit) {
      super(init);
      const e = explain(this);
      if (e) this.message = `${init.context} failed: ${e}${this.serverMessage ? ` (${this.serverMessage})` : ''}`;
    }
    override isRetriable(): boolean {
      return retriable;
    }
    static readonly faultType: T = type;
  };
}

export class NotAuthenticated extends fault('NotAuthenticated', () => 'the session is not authenticated (expired or logged out)', true) {}
export class InvalidLogin extends fault('InvalidLogin', () => 'login rejected: wrong user name or password') {}
export class NoPermission extends fault('NoPermission', (f) => {
  const p = f.detailText('privilegeId');
  return `permission denied${p ? `: privilege ${p} is missing` : ''}`;
}) {}
export class ManagedObjectNotFound extends fault('ManagedObjectNotFound', (f) => {
  const o = f.detail?.children.find((c) => c.name === 'obj');
  return `the object ${o ? `${o.attrs.type ?? ''} ${o.text}`.trim() : ''} does not exist (deleted, or a stale reference)`.replace('  ', ' ');
}) {
  /** The missing object as `{type, value}` when the server reported it. */
  get obj(): { type: string; value: string } | undefined {
    const o = this.detail?.children.find((c) => c.name === 'obj');
    return o ? { type: o.attrs.type ?? '', value: o.text } : undefined;
  }
}
export class InvalidPowerState extends fault('InvalidPowerState', (f) => {
  const ex = f.detailText('existingState');
  const rq = f.detailText('requestedState');
  return `the VM is in the wrong power state${ex ? ` (${ex}` : ''}${rq ? `${ex ? ', ' : ' ('}needs ${rq})` : ex ? ')' : ''}`;
}) {}
export class InvalidState extends fault('InvalidState', () => 'the object is not in a state that allows this operation', true) {}
export class TaskInProgress extends fault('TaskInProgress', () => 'another task is already running on this object', true) {}
export class FileFault extends fault('FileFault', (f) => {
  const file = f.detailText('file');
  return `file error${file ? ` on ${file}` : ''}`;
}) {
  get file(): string | undefined {
    return this.detailText('file');
  }
}
export class FileNotFound extends FileFault {
  constructor(init: VimFaultInit) {
    super(init);
    this.message = `${init.context} failed: file not found${this.file ? `: ${this.file}` : ''}${this.serverMessage ? ` (${this.serverMessage})` : ''}`;
  }
}
export class FileLocked extends FileFault {
  constructor(init: VimFaultInit) {
    super(init);
    this.message = `${init.context} failed: file is locked${this.file ? `: ${this.file}` : ''}${this.serverMessage ? ` (${this.serverMessage})` : ''}`;
  }
  override isRetriable(): boolean {
    return true;
  }
}
export class FileAlreadyExists extends FileFault {}
export class CannotAccessFile extends FileFault {}
export class InvalidArgument extends fault('InvalidArgument', (f) => {
  const p = f.detailText('invalidProperty');
  return `invalid argument${p ? ` "${p}"` : ''}`;
}) {
  get invalidProperty(): string | undefined {
    return this.detailText('invalidProperty');
  }
}
export class InvalidRequest extends fault('InvalidRequest', () => 'the server rejected the request as invalid') {}
export class NotSupported extends fault('NotSupported', () => 'the operation is not supported by this object or server') {}
export class NotImplemented extends fault('NotImplemented', () => 'the operation is not implemented by this server') {}
export class MethodNotFound extends fault('MethodNotFound', (f) => {
  const m = f.detailText('method');
  return `the server does not implement ${m ?? 'this method'}`;
}) {}
export class RequestCanceled extends fault('RequestCanceled', () => 'the task was cancelled') {}
export class ApplicationQuiesceFault extends fault('ApplicationQuiesceFault', () => 'guest quiescing failed', true) {}
export class SnapshotFault extends fault('SnapshotFault', () => 'snapshot operation failed', true) {}
export class InvalidDeviceSpec extends fault('InvalidDeviceSpec', (f) => {
  const i = f.detailText('deviceIndex');
  return `invalid device specification${i !== undefined ? ` (device change #${i})` : ''}`;
}) {}
export class SystemError extends fault('SystemError', () => 'internal server error', true) {}
export class HostCommunication extends fault('HostCommunication', () => 'vCenter cannot reach the ESXi host', true) {}

type FaultCtor = new (init: VimFaultInit) => VimFault;

const byType: Record<string, FaultCtor> = {
  NotAuthenticated,
  InvalidLogin,
  NoPermission,
  ManagedObjectNotFound,
  InvalidPowerState,
  InvalidState,
  TaskInProgress,
  FileFault,
  FileNotFound,
  FileLocked,
  FileAlreadyExists,
  CannotAccessFile,
  InvalidArgument,
  InvalidRequest,
  NotSupported,
  NotImplemented,
  MethodNotFound,
  RequestCanceled,
  ApplicationQuiesceFault,
  SnapshotFault,
  InvalidDeviceSpec,
  SystemError,
  HostCommunication,
  // subtypes that map onto a parent class
  InvalidDatastorePath: FileFault,
  InvalidDatastore: InvalidArgument,
  DuplicateName: InvalidArgument,
  InvalidName: InvalidArgument,
  NotEnoughLicenses: NotSupported,
  HostNotConnected: HostCommunication,
  ToolsUnavailable: ApplicationQuiesceFault,
  RestrictedVersion: NotSupported,
  InvalidVmState: InvalidState,
  InvalidHostState: InvalidState,
  SnapshotLocked: SnapshotFault,
  TooManySnapshotLevels: SnapshotFault,
  GuestOperationsUnavailable: InvalidState,
  NotFound: ManagedObjectNotFound,
};

/** Builds the typed fault for a vim fault type name. Unknown types become a plain VimFault. */
export function makeFault(init: VimFaultInit): VimFault {
  const Ctor = byType[init.faultType];
  return Ctor ? new Ctor(init) : new VimFault(init);
}
