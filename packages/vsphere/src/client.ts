/**
 * VSphereClient: the public entry point. Connects (version negotiation,
 * RetrieveServiceContent, Login), keeps the session alive, re-logs in
 * transparently after NotAuthenticated, and groups the domain operations:
 *
 *   client.inventory  datacenters, clusters, hosts, datastores, VMs
 *   client.tasks      wait (progress, timeout, cancel)
 *   client.snapshots  create / disks / tree / remove / consolidate / findByTag
 *   client.cbt        enable, queryChangedDiskAreas (paged)
 *   client.hotadd     attach / detach existing disks on the proxy VM
 *   client.files      /folder Range GET, PUT, service tickets
 *   client.leases     ExportVm / ExportSnapshot HttpNfcLease
 *   client.vms        CreateVM (restores), power, reconfigure, destroy restored VMs
 *
 * The password lives only in a private field and is never part of a message.
 */
import { CbtApi } from './cbt.ts';
import { read, type Ctx } from './context.ts';
import { FilesApi } from './files.ts';
import { HotAddApi } from './hotadd.ts';
import { InventoryApi } from './inventory.ts';
import { LeasesApi } from './lease.ts';
import { SnapshotsApi } from './snapshots.ts';
import { SoapClient, type SoapClientOptions } from './soap/client.ts';
import { InvalidLogin, ProtocolError } from './soap/faults.ts';
import { child, join, ref, text, val, type MoRef, type XmlNode } from './soap/xml.ts';
import { TaggingApi } from './tagging.ts';
import { Tasks } from './tasks.ts';
import type { AboutInfo, ServiceContent, UserSession } from './types.ts';
import { VmsApi } from './vms.ts';
import { DatastoresApi } from './datastores.ts';

export interface ConnectOptions {
  /** https://vcenter.example.com/sdk (a bare host URL gets /sdk) */
  url: string;
  username: string;
  password: string;
  /** pin the server certificate by SHA-256 thumbprint (colon hex) */
  thumbprintSha256?: string | undefined;
  /** or trust this CA (PEM) */
  caPem?: string | undefined;
  /** permit http:// (labs only) */
  allowHttp?: boolean | undefined;
  /** deadline of one SOAP/HTTP call, ms (default 60 s) */
  timeoutMs?: number | undefined;
  connectTimeoutMs?: number | undefined;
  /** keep-alive period, ms (default 10 min; 0 disables) */
  keepAliveMs?: number | undefined;
  locale?: string | undefined;
  connections?: number | undefined;
  /** observes every SOAP request (body with the password redacted) */
  onRequest?: SoapClientOptions['onRequest'];
}

const SI: MoRef = { type: 'ServiceInstance', value: 'ServiceInstance' };

function mref(n: XmlNode | undefined): MoRef | undefined {
  return n ? { type: n.attrs.type ?? '', value: n.text } : undefined;
}

export function parseServiceContent(r: XmlNode): ServiceContent {
  const need = (name: string): MoRef => {
    const m = mref(child(r, name));
    if (!m) throw new ProtocolError(`ServiceContent has no ${name}`);
    return m;
  };
  const about = child(r, 'about');
  const a: AboutInfo = {
    name: text(about, 'name') ?? '',
    fullName: text(about, 'fullName') ?? '',
    version: text(about, 'version') ?? '',
    build: text(about, 'build') ?? '',
    apiType: text(about, 'apiType') ?? '',
    apiVersion: text(about, 'apiVersion') ?? '',
    instanceUuid: text(about, 'instanceUuid'),
  };
  return {
    rootFolder: need('rootFolder'),
    propertyCollector: need('propertyCollector'),
    viewManager: need('viewManager'),
    sessionManager: need('sessionManager'),
    searchIndex: mref(child(r, 'searchIndex')),
    fileManager: mref(child(r, 'fileManager')),
    virtualDiskManager: mref(child(r, 'virtualDiskManager')),
    about: a,
  };
}

export class VSphereClient {
  readonly soap: SoapClient;
  readonly tasks: Tasks;
  readonly inventory: InventoryApi;
  readonly snapshots: SnapshotsApi;
  readonly cbt: CbtApi;
  readonly hotadd: HotAddApi;
  readonly files: FilesApi;
  readonly leases: LeasesApi;
  readonly vms: VmsApi;
  /** NFS datastores (instant recovery). */
  readonly datastores: DatastoresApi;
  /** vSphere tags (vCenter's vAPI, a session of its own with the same account). */
  readonly tagging: TaggingApi;
  /** the logged-in session, if any */
  session: UserSession | undefined;
  private content: ServiceContent | undefined;
  private readonly ctx: Ctx;
  readonly #username: string;
  readonly #password: string;
  readonly #locale: string | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private readonly keepAliveMs: number;
  private closed = false;
  /** number of transparent re-logins done (observability, tests) */
  relogins = 0;

  private constructor(opts: ConnectOptions) {
    this.soap = new SoapClient({
      url: opts.url,
      thumbprintSha256: opts.thumbprintSha256,
      caPem: opts.caPem,
      allowHttp: opts.allowHttp,
      timeoutMs: opts.timeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs,
      connections: opts.connections,
      onRequest: opts.onRequest,
    });
    this.#username = opts.username;
    this.#password = opts.password;
    this.#locale = opts.locale;
    this.keepAliveMs = opts.keepAliveMs ?? 10 * 60_000;
    this.tasks = new Tasks(this.soap, () => this.serviceContent.propertyCollector);
    const ctx: Ctx = { soap: this.soap, sc: () => this.serviceContent, tasks: this.tasks };
    this.ctx = ctx;
    this.inventory = new InventoryApi(ctx);
    this.snapshots = new SnapshotsApi(ctx);
    this.cbt = new CbtApi(ctx, this.snapshots);
    this.hotadd = new HotAddApi(ctx);
    this.files = new FilesApi(ctx, { caPem: opts.caPem, timeoutMs: opts.timeoutMs });
    this.leases = new LeasesApi(ctx, this.files);
    this.vms = new VmsApi(ctx);
    this.datastores = new DatastoresApi(ctx);
    this.tagging = new TaggingApi(ctx, () => ({ username: this.#username, password: this.#password }));
  }

  /** Connects and logs in. Errors are typed (InvalidLogin, TlsError, ConnectError, …). */
  static async connect(opts: ConnectOptions): Promise<VSphereClient> {
    const c = new VSphereClient(opts);
    try {
      await c.soap.negotiateVersion();
      await c.retrieveServiceContent();
      await c.login();
      c.soap.setReauthenticator(() => c.relogin());
      c.startKeepAlive();
      return c;
    } catch (e) {
      await c.soap.close();
      throw e;
    }
  }

  get serviceContent(): ServiceContent {
    if (!this.content) throw new ProtocolError('not connected');
    return this.content;
  }
  get about(): AboutInfo {
    return this.serviceContent.about;
  }
  /** SOAPAction version in use */
  get apiVersion(): string {
    return this.soap.version;
  }
  get isVCenter(): boolean {
    return this.about.apiType === 'VirtualCenter';
  }

  private async retrieveServiceContent(): Promise<void> {
    const r = await this.soap.returnval('RetrieveServiceContent', ref('_this', SI), { noReauth: true });
    if (!r) throw new ProtocolError('RetrieveServiceContent returned nothing');
    this.content = parseServiceContent(r);
  }

  private async login(): Promise<void> {
    const r = await this.soap.returnval(
      'Login',
      join([ref('_this', this.serviceContent.sessionManager), val('userName', this.#username), val('password', this.#password), val('locale', this.#locale)]),
      { noReauth: true, context: `Login as ${this.#username}` },
    );
    this.session = { key: text(r, 'key') ?? '', userName: text(r, 'userName') ?? this.#username, loginTime: text(r, 'loginTime') };
    if (!this.soap.sessionCookie()) throw new ProtocolError('Login succeeded but the server set no session cookie');
  }

  private async relogin(): Promise<void> {
    if (this.closed) throw new ProtocolError('client is closed');
    this.soap.clearCookies();
    this.relogins++;
    try {
      await this.login();
    } catch (e) {
      if (e instanceof InvalidLogin) e.message = `re-login after session expiry failed: ${e.message}`;
      throw e;
    }
  }

  private startKeepAlive(): void {
    if (!this.keepAliveMs) return;
    this.keepAliveTimer = setInterval(() => {
      this.keepAlive().catch(() => undefined);
    }, this.keepAliveMs);
    this.keepAliveTimer.unref();
  }

  /** A cheap authenticated call (CurrentTime); re-logs in if the session expired. Returns server time. */
  async keepAlive(): Promise<string> {
    const r = await this.soap.returnval('CurrentTime', ref('_this', SI));
    return r?.text ?? '';
  }

  /** The session as the server sees it (SessionManager.currentSession). */
  async currentSession(): Promise<UserSession | undefined> {
    const o = await read(this.ctx, this.serviceContent.sessionManager, ['currentSession']);
    const s = o.props.get('currentSession');
    return s ? { key: text(s, 'key') ?? '', userName: text(s, 'userName') ?? '', loginTime: text(s, 'loginTime') } : undefined;
  }

  /** Logs out (the client can log in again transparently if used afterwards, unless closed). */
  async logout(): Promise<void> {
    if (!this.soap.sessionCookie()) return;
    await this.soap.call('Logout', ref('_this', this.serviceContent.sessionManager), { noReauth: true, timeoutMs: 15_000 }).catch(() => undefined);
    this.soap.clearCookies();
    this.session = undefined;
  }

  /** Logs out and releases connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.leases.stopAll();
    await this.tagging.logout();
    await this.logout();
    this.closed = true;
    this.soap.setReauthenticator(undefined);
    await this.files.close();
    await this.soap.close();
  }
}
