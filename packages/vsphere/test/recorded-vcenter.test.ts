import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ApplicationQuiesceFault,
  ConnectError,
  FileFault,
  FileNotFound,
  InsecureTransportError,
  InvalidArgument,
  InvalidLogin,
  ManagedObjectNotFound,
  ProtocolError,
  ThumbprintMismatchError,
  TimeoutError,
  TlsError,
  VimFault,
  VSphereClient,
  probeThumbprint,
  type ConnectOptions,
} from '../src/index.ts';
import { FixtureServer, envelope, faultReply, fixture, ok } from './fixture-server.ts';

let srv: FixtureServer;
beforeEach(async () => {
  srv = await new FixtureServer().start();
});
afterEach(async () => {
  await srv.stop();
});

const opts = (extra: Partial<ConnectOptions> = {}): ConnectOptions => ({
  url: srv.url,
  username: 'backup@vsphere.local',
  password: 'right',
  thumbprintSha256: srv.thumbprintSha256,
  keepAliveMs: 0,
  ...extra,
});

describe('recorded vCenter: session', () => {
  it('negotiates the SOAPAction version from vimServiceVersions.xml and never picks a version newer than it knows', async () => {
    srv.withLogin();
    const c = await VSphereClient.connect(opts());
    expect(c.apiVersion).toBe('8.0.3.0');
    expect(srv.calls('Login')[0]!.headers.soapaction).toBe('urn:vim25/8.0.3.0');
    expect(c.about.apiType).toBe('VirtualCenter');
    expect(c.isVCenter).toBe(true);
    await c.close();
  });

  it('falls back to a default version when vimServiceVersions.xml is missing', async () => {
    srv.versionsXml = undefined;
    srv.withLogin();
    const c = await VSphereClient.connect(opts());
    expect(c.apiVersion).toBe('6.5');
    await c.close();
  });

  it('sends a quoted session cookie back exactly as received, on every later request', async () => {
    srv.withLogin('vmware_soap_session="52f1b1e2-quoted"');
    srv.on('CurrentTime', ok('<CurrentTimeResponse xmlns="urn:vim25"><returnval>2026-11-25T01:02:04Z</returnval></CurrentTimeResponse>'));
    const c = await VSphereClient.connect(opts());
    expect(await c.keepAlive()).toBe('2026-11-25T01:02:04Z');
    expect(srv.calls('CurrentTime')[0]!.headers.cookie).toBe('vmware_soap_session="52f1b1e2-quoted"');
    expect(c.soap.sessionCookie()).toBe('"52f1b1e2-quoted"');
    await c.close();
    expect(srv.calls('Logout')[0]!.headers.cookie).toBe('vmware_soap_session="52f1b1e2-quoted"');
  });

  it('logs in again transparently after NotAuthenticated and retries the call once', async () => {
    let session = 1;
    srv.withLogin();
    srv.on('Login', () => ok(fixture('Login.xml'), { 'set-cookie': `vmware_soap_session="s${session++}"; Path=/; HttpOnly` }));
    srv.on('CurrentTime', (r) =>
      r.headers.cookie === 'vmware_soap_session="s1"'
        ? faultReply('NotAuthenticated', 'The session is not authenticated.', '<object type="Folder">group-d1</object><privilegeId>System.View</privilegeId>')
        : ok('<CurrentTimeResponse xmlns="urn:vim25"><returnval>t</returnval></CurrentTimeResponse>'),
    );
    const c = await VSphereClient.connect(opts());
    expect(await c.keepAlive()).toBe('t');
    expect(c.relogins).toBe(1);
    expect(srv.calls('Login')).toHaveLength(2);
    expect(srv.calls('CurrentTime').map((r) => r.headers.cookie)).toEqual(['vmware_soap_session="s1"', 'vmware_soap_session="s2"']);
    await c.close();
  });

  it('concurrent calls that hit an expired session share one re-login', async () => {
    let session = 1;
    srv.withLogin();
    srv.on('Login', () => ok(fixture('Login.xml'), { 'set-cookie': `vmware_soap_session="s${session++}"; Path=/` }));
    srv.on('CurrentTime', (r) =>
      r.headers.cookie === 'vmware_soap_session="s1"'
        ? faultReply('NotAuthenticated', 'The session is not authenticated.')
        : ok('<CurrentTimeResponse xmlns="urn:vim25"><returnval>t</returnval></CurrentTimeResponse>'),
    );
    const c = await VSphereClient.connect(opts());
    expect(await Promise.all(Array.from({ length: 6 }, () => c.keepAlive()))).toEqual(Array(6).fill('t'));
    expect(srv.calls('Login')).toHaveLength(2);
    expect(c.relogins).toBe(1);
    await c.close();
  });

  it('wrong password: InvalidLogin with a readable message that does not contain the password', async () => {
    srv.withLogin();
    const err = await VSphereClient.connect(opts({ password: 'Sup3r-Secret&<pw>' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidLogin);
    expect(err).toBeInstanceOf(VimFault);
    expect((err as InvalidLogin).isRetriable()).toBe(false);
    expect((err as Error).message).toMatch(/Login as backup@vsphere.local failed: login rejected: wrong user name or password/);
    expect((err as Error).message).not.toContain('Sup3r');
    // the password was sent escaped
    expect(srv.calls('Login')[0]!.body).toContain('<password>Sup3r-Secret&amp;&lt;pw&gt;</password>');
  });

  it('onRequest observers never see the password', async () => {
    srv.withLogin();
    const seen: string[] = [];
    const c = await VSphereClient.connect(opts({ onRequest: (_m, body) => seen.push(body) }));
    expect(seen.join('\n')).not.toContain('right');
    expect(seen.join('\n')).toContain('<password>***</password>');
    await c.close();
  });
});

describe('recorded vCenter: TLS and transport errors', () => {
  it('probeThumbprint returns the SHA-256 and SHA-1 thumbprints of the presented certificate', async () => {
    const t = await probeThumbprint(srv.url);
    expect(t.sha256).toBe(srv.thumbprintSha256);
    expect(t.sha1).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    expect(t.subject).toContain('CN=127.0.0.1');
  });

  it('refuses a changed thumbprint, naming the expected and the actual one', async () => {
    srv.withLogin();
    const wrong = 'AA:'.repeat(31) + 'AA';
    const err = await VSphereClient.connect(opts({ thumbprintSha256: wrong })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ThumbprintMismatchError);
    expect((err as Error).message).toContain(wrong);
    expect((err as Error).message).toContain(srv.thumbprintSha256);
    expect(srv.requests).toHaveLength(0); // nothing was sent to the impostor
  });

  it('accepts a thumbprint in lower case without colons', async () => {
    srv.withLogin();
    const c = await VSphereClient.connect(opts({ thumbprintSha256: srv.thumbprintSha256.replace(/:/g, '').toLowerCase() }));
    await c.close();
  });

  it('verifies against a CA certificate, and rejects an unknown self-signed certificate without one', async () => {
    srv.withLogin();
    const c = await VSphereClient.connect(opts({ thumbprintSha256: undefined, caPem: srv.certPem }));
    await c.close();
    const err = await VSphereClient.connect(opts({ thumbprintSha256: undefined })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TlsError);
    expect((err as Error).message).toMatch(/not trusted.*CA certificate or pin its SHA-256 thumbprint/);
  });

  it('refuses plain HTTP unless explicitly allowed', async () => {
    const err = await VSphereClient.connect(opts({ url: srv.url.replace('https:', 'http:') })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InsecureTransportError);
    expect((err as Error).message).toMatch(/refusing plain HTTP/);
  });

  it('plain HTTP works only with allowHttp (labs)', async () => {
    const plain = await new FixtureServer().start({ plain: true });
    try {
      plain.withLogin();
      await expect(VSphereClient.connect({ ...opts(), url: plain.url, thumbprintSha256: undefined })).rejects.toBeInstanceOf(InsecureTransportError);
      expect(plain.requests).toHaveLength(0);
      const c = await VSphereClient.connect({ ...opts(), url: plain.url, thumbprintSha256: undefined, allowHttp: true });
      expect(c.session?.userName).toBe('VSPHERE.LOCAL\\backup');
      await c.close();
    } finally {
      await plain.stop();
    }
  });

  it('https:// to a plain-HTTP port: a TlsError saying the port does not speak TLS (not an OpenSSL string), for the probe and the client', async () => {
    const plain = await new FixtureServer().start({ plain: true });
    try {
      const https = plain.url.replace('http:', 'https:');
      const where = new URL(plain.url).host;
      for (const attempt of [() => probeThumbprint(https), () => VSphereClient.connect({ ...opts(), url: https })]) {
        const err = await attempt().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TlsError);
        expect((err as Error).message).toBe(`${where} does not speak TLS (it answered like a plain-HTTP server): check the port, or use http:// for a lab that has no TLS`);
        expect((err as TlsError).isRetriable()).toBe(false);
      }
      expect(plain.requests).toHaveLength(0);
    } finally {
      await plain.stop();
    }
  });

  it('unreachable host (closed loopback port): ConnectError, quickly', async () => {
    const { createServer } = await import('node:net');
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    const t0 = Date.now();
    const err = await VSphereClient.connect(opts({ url: `https://127.0.0.1:${port}/sdk` })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).isRetriable()).toBe(true);
    expect((err as Error).message).toMatch(/cannot connect to 127\.0\.0\.1:\d+: connection refused/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('a server that never answers: TimeoutError after the call timeout, no hang', async () => {
    srv.withLogin();
    srv.on('CurrentTime', { body: '', hang: true });
    const c = await VSphereClient.connect(opts({ timeoutMs: 800 }));
    const t0 = Date.now();
    const err = await c.keepAlive().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(/CurrentTime/);
    expect(Date.now() - t0).toBeLessThan(5000);
    await c.close();
  });

  it('truncated XML: ProtocolError naming the call', async () => {
    srv.withLogin();
    srv.on('CurrentTime', { body: envelope('<CurrentTimeResponse xmlns="urn:vim25"><returnval>2026').slice(0, -40) });
    const c = await VSphereClient.connect(opts());
    const err = await c.keepAlive().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/malformed XML in the CurrentTime response/);
    await c.close();
  });

  it('malformed XML (not well-formed, HTML error page, wrong status): ProtocolError', async () => {
    srv.withLogin();
    const c = await VSphereClient.connect(opts());
    srv.on('CurrentTime', { body: '<soapenv:Envelope><oops></soapenv:Envelope>' });
    expect(await c.keepAlive().catch((e: unknown) => e)).toBeInstanceOf(ProtocolError);
    srv.on('CurrentTime', { body: '<html><body>503 Service Unavailable</body></html>', status: 503 });
    const e2 = await c.keepAlive().catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(ProtocolError);
    expect((e2 as Error).message).toMatch(/unexpected HTTP 503/);
    srv.on('CurrentTime', { body: '<a>not soap</a>' });
    expect(String(await c.keepAlive().catch((e: unknown) => e))).toMatch(/not a SOAP envelope/);
    await c.close();
  });
});

describe('recorded vCenter: properties, xsi:type and paging', () => {
  it('follows ContinueRetrievePropertiesEx tokens until the last page and parses xsi:type-typed devices', async () => {
    srv.withLogin();
    srv.on('CreateContainerView', ok('<CreateContainerViewResponse xmlns="urn:vim25"><returnval type="ContainerView">session[52b1]52e3</returnval></CreateContainerViewResponse>'));
    srv.on('DestroyView', ok('<DestroyViewResponse xmlns="urn:vim25"></DestroyViewResponse>'));
    srv.on('RetrievePropertiesEx', ok(fixture('vm-properties-page1.xml')));
    srv.on('ContinueRetrievePropertiesEx', (_r, n) =>
      n === 1
        ? ok(fixture('vm-properties-page2.xml').replace('<returnval>', '<returnval><token>2</token>'))
        : ok('<ContinueRetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="VirtualMachine">vm-44</obj><propSet><name>name</name><val xsi:type="xsd:string">web01</val></propSet></objects></returnval></ContinueRetrievePropertiesExResponse>'),
    );
    const c = await VSphereClient.connect(opts());
    const vms = await c.inventory.vms();
    expect(vms.map((v) => v.name)).toEqual(['app01 & <prod>', 'db01', 'web01']);
    expect(srv.calls('ContinueRetrievePropertiesEx').map((r) => /<token>(.*?)<\/token>/.exec(r.body)?.[1])).toEqual(['1', '2']);
    expect(srv.calls('RetrievePropertiesEx')[0]!.body).toContain('<maxObjects>200</maxObjects>');
    expect(srv.calls('DestroyView')).toHaveLength(1);

    const app = vms[0]!;
    expect(app).toMatchObject({
      moref: 'vm-42',
      biosUuid: '4232c4a1-0000-1111-2222-333344445555',
      instanceUuid: '5032c4a1-8b7e-9f10-2a3b-4c5d6e7f8091',
      powerState: 'poweredOn',
      toolsStatus: 'toolsOk',
      guestId: 'rhel9_64Guest',
      numCpu: 4,
      memoryMiB: 8192,
      changeTrackingEnabled: true,
      hasSnapshots: true,
      currentSnapshot: 'snapshot-77',
    });
    expect(app.controllers.map((x) => [x.key, x.kind])).toEqual([[200, 'ide'], [1000, 'pvscsi'], [1001, 'lsisas'], [31000, 'nvme']]);
    expect(app.disks.map((d) => [d.key, d.controller, d.busNumber, d.unitNumber, d.capacityBytes, d.thin, d.diskMode])).toEqual([
      [2000, 'pvscsi', 0, 0, 17179869184, true, 'persistent'],
      [2001, 'pvscsi', 0, 1, 1073741824, false, 'independent_persistent'],
      [2016, 'lsisas', 1, 0, 107374182400, false, 'independent_persistent'],
      [32000, 'nvme', 0, 0, 2147483648, true, 'persistent'],
    ]);
    const d0 = app.disks[0]!;
    expect(d0.fileName).toBe('[ds1] app01/app01-000001.vmdk');
    expect(d0.parents).toEqual(['[ds1] app01/app01.vmdk']);
    expect(d0.changeId).toBe('52 b4 49 50 0d 1e 2f 3a-4b 5c 6d 7e 8f 90 37 9b/16');
    expect(d0.backing.deltaDiskFormat).toBe('redoLogFormat');
    expect(app.disks[1]!.eagerlyScrub).toBe(true);
    expect(app.disks[2]!.backing).toMatchObject({ type: 'VirtualDiskRawDiskMappingVer1BackingInfo', compatibilityMode: 'physicalMode' });
    expect(app.nics).toEqual([{ key: 4000, type: 'VirtualVmxnet3', label: 'Network adapter 1', macAddress: '00:50:56:9a:01:02', network: 'network-13', networkName: 'VM Network' }]);
    // a property missing from the answer means false
    expect(vms[1]!.changeTrackingEnabled).toBe(false);
    expect(vms[1]!.hasSnapshots).toBe(false);
    await c.close();
  });

  it('finds Vaultline snapshots by their run tag in a snapshot tree', async () => {
    srv.withLogin();
    srv.on('CreateContainerView', ok('<CreateContainerViewResponse xmlns="urn:vim25"><returnval type="ContainerView">session[52b1]52e3</returnval></CreateContainerViewResponse>'));
    srv.on('DestroyView', ok('<DestroyViewResponse xmlns="urn:vim25"></DestroyViewResponse>'));
    srv.on('RetrievePropertiesEx', ok(fixture('vm-properties-page1.xml').replace('<token>1</token>', '')));
    const c = await VSphereClient.connect(opts());
    const found = await c.snapshots.findByTag();
    expect(found).toEqual([
      expect.objectContaining({ vm: 'vm-42', snapshot: 'snapshot-77', runId: 'run-17', name: 'vaultline-run-17' }),
    ]);
    expect(await c.snapshots.findByTag({ runId: 'other' })).toEqual([]);
    await c.close();
  });

  it('unknown moref: ManagedObjectNotFound naming the object', async () => {
    srv.withLogin();
    srv.on('RetrievePropertiesEx', faultReply('ManagedObjectNotFound', 'The object \'vim.VirtualMachine:vm-999\' has already been deleted or has not been completely created', '<obj type="VirtualMachine">vm-999</obj>'));
    const c = await VSphereClient.connect(opts());
    const err = await c.inventory.vm('vm-999').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagedObjectNotFound);
    expect((err as ManagedObjectNotFound).obj).toEqual({ type: 'VirtualMachine', value: 'vm-999' });
    expect((err as Error).message).toMatch(/VirtualMachine vm-999 does not exist/);
    await c.close();
  });
});

describe('recorded vCenter: tasks', () => {
  function taskServer(states: string[]) {
    srv.withLogin();
    srv.on('CreateSnapshot_Task', ok('<CreateSnapshot_TaskResponse xmlns="urn:vim25"><returnval type="Task">task-1234</returnval></CreateSnapshot_TaskResponse>'));
    srv.on('CancelTask', ok('<CancelTaskResponse xmlns="urn:vim25"></CancelTaskResponse>'));
    srv.on('RetrievePropertiesEx', (_r, n) => {
      const s = states[Math.min(n, states.length) - 1]!;
      if (s.startsWith('running:')) return ok(fixture('task-running.xml').replace('PROGRESS', s.slice(8)));
      return ok(fixture(s));
    });
  }

  it('reports progress of a running task, then returns the snapshot from info.result', async () => {
    taskServer(['running:10', 'running:10', 'running:55', 'running:90', 'task-success-snapshot.xml']);
    const c = await VSphereClient.connect(opts());
    const progress: number[] = [];
    const snap = await c.snapshots.create('vm-42', { runId: 'run-17', quiesce: true, onProgress: (p) => progress.push(p) });
    expect(snap).toBe('snapshot-77');
    expect(progress).toEqual([10, 55, 90, 100]);
    const body = srv.calls('CreateSnapshot_Task')[0]!.body;
    expect(body).toContain('<name>vaultline-run-17</name>');
    expect(body).toContain('[vaultline-run:run-17]</description><memory>false</memory><quiesce>true</quiesce>');
    await c.close();
  });

  it('reports progress only as it rises, even when a poll reads a lower value', async () => {
    taskServer(['running:0', 'running:30', 'running:20', 'running:30', 'running:75', 'task-success-snapshot.xml']);
    const c = await VSphereClient.connect(opts());
    const progress: number[] = [];
    await c.snapshots.create('vm-42', { runId: 'run-18', onProgress: (p) => progress.push(p) });
    expect(progress).toEqual([0, 30, 75, 100]);
    await c.close();
  });

  it('a fault inside task info becomes the typed fault with the server message', async () => {
    taskServer(['running:5', 'task-error-quiesce.xml']);
    const c = await VSphereClient.connect(opts());
    const err = await c.snapshots.create('vm-42', { runId: 'r', quiesce: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationQuiesceFault);
    expect((err as VimFault).isRetriable()).toBe(true);
    expect((err as Error).message).toMatch(/creating snapshot of vm-42 failed: guest quiescing failed \(An error occurred while quiescing/);
    await c.close();
  });

  it('FileNotFound in task info is a FileFault subclass and names the file', async () => {
    taskServer(['task-error-filenotfound.xml']);
    const c = await VSphereClient.connect(opts());
    const err = await c.snapshots.create('vm-42', { runId: 'r' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileNotFound);
    expect(err).toBeInstanceOf(FileFault);
    expect((err as FileNotFound).file).toBe('[ds1] gone/gone.vmdk');
    await c.close();
  });

  it('removing a snapshot consolidates the VM when vCenter reports consolidationNeeded', async () => {
    srv.withLogin();
    const task = (m: string) => ok(`<${m}Response xmlns="urn:vim25"><returnval type="Task">task-${m}</returnval></${m}Response>`);
    srv.on('RemoveSnapshot_Task', task('RemoveSnapshot_Task'));
    srv.on('ConsolidateVMDisks_Task', task('ConsolidateVMDisks_Task'));
    const prop = (type: string, id: string, name: string, val: string) =>
      ok(`<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="${type}">${id}</obj><propSet><name>${name}</name>${val}</propSet></objects></returnval></RetrievePropertiesExResponse>`);
    srv.on('RetrievePropertiesEx', (r) => {
      if (r.body.includes('<type>VirtualMachineSnapshot</type>')) return prop('VirtualMachineSnapshot', 'snapshot-77', 'vm', '<val type="VirtualMachine" xsi:type="ManagedObjectReference">vm-42</val>');
      if (r.body.includes('runtime.consolidationNeeded')) return prop('VirtualMachine', 'vm-42', 'runtime.consolidationNeeded', '<val xsi:type="xsd:boolean">true</val>');
      const id = /<obj type="Task">(.*?)<\/obj>/.exec(r.body)![1]!;
      return prop('Task', id, 'info', '<val xsi:type="TaskInfo"><key>x</key><state>success</state></val>');
    });
    const c = await VSphereClient.connect(opts());
    expect(await c.snapshots.remove('snapshot-77')).toEqual({ consolidated: true });
    expect(srv.calls('RemoveSnapshot_Task')[0]!.body).toContain('<removeChildren>false</removeChildren><consolidate>true</consolidate>');
    expect(srv.calls('ConsolidateVMDisks_Task')[0]!.body).toContain('<_this type="VirtualMachine">vm-42</_this>');
    await c.close();
  });

  it('a task that does not finish in time is cancelled and raises TimeoutError', async () => {
    taskServer(['running:1']);
    const c = await VSphereClient.connect(opts());
    const err = await c.snapshots.create('vm-42', { runId: 'r', timeoutMs: 700 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(/still running at 1% after 700 ms/);
    expect(srv.calls('CancelTask')).toHaveLength(1);
    expect(srv.calls('CancelTask')[0]!.body).toContain('<_this type="Task">task-1234</_this>');
    await c.close();
  });
});

describe('recorded vCenter: CBT paging', () => {
  it('QueryChangedDiskAreas loops startOffset = startOffset + length until the capacity, merging areas', async () => {
    srv.withLogin();
    const cap = 10 * 1024 * 1024;
    const pages = [
      { start: 0, len: 4 * 1024 * 1024, areas: [[0, 65536], [65536, 65536], [3 * 1048576, 1048576]] },
      { start: 4 * 1024 * 1024, len: 4 * 1024 * 1024, areas: [] },
      { start: 8 * 1024 * 1024, len: 2 * 1024 * 1024, areas: [[9 * 1048576, 2 * 1048576]] },
    ];
    srv.on('QueryChangedDiskAreas', (_r, n) => {
      const p = pages[n - 1]!;
      return ok(
        `<QueryChangedDiskAreasResponse xmlns="urn:vim25"><returnval><startOffset>${p.start}</startOffset><length>${p.len}</length>` +
          p.areas.map(([s, l]) => `<changedArea><start>${s}</start><length>${l}</length></changedArea>`).join('') +
          '</returnval></QueryChangedDiskAreasResponse>',
      );
    });
    const c = await VSphereClient.connect(opts());
    const r = await c.cbt.queryChangedDiskAreas('vm-42', 'snapshot-77', 2000, '52 b4/16', cap);
    expect(r.calls).toBe(3);
    expect(r.areas).toEqual([
      { start: 0, length: 131072 },
      { start: 3 * 1048576, length: 1048576 },
      { start: 9 * 1048576, length: 1048576 }, // clipped to the capacity
    ]);
    expect(srv.calls('QueryChangedDiskAreas').map((q) => /<startOffset>(\d+)</.exec(q.body)?.[1])).toEqual(['0', '4194304', '8388608']);
    expect(srv.calls('QueryChangedDiskAreas')[0]!.body).toContain('<snapshot type="VirtualMachineSnapshot">snapshot-77</snapshot><deviceKey>2000</deviceKey><startOffset>0</startOffset><changeId>52 b4/16</changeId>');
    await c.close();
  });

  it('an answer that makes no progress aborts instead of spinning; FileFault for a bad changeId is typed', async () => {
    srv.withLogin();
    srv.on('QueryChangedDiskAreas', ok('<QueryChangedDiskAreasResponse xmlns="urn:vim25"><returnval><startOffset>0</startOffset><length>0</length></returnval></QueryChangedDiskAreasResponse>'));
    const c = await VSphereClient.connect(opts());
    await expect(c.cbt.queryChangedDiskAreas('vm-42', 'snapshot-77', 2000, '*', 1 << 20)).rejects.toThrow(/made no progress at offset 0/);
    srv.on('QueryChangedDiskAreas', faultReply('FileFault', 'Error caused by file /vmfs/volumes/ds1/app01/app01-ctk.vmdk', '<file>/vmfs/volumes/ds1/app01/app01-ctk.vmdk</file>'));
    const e2 = await c.cbt.queryChangedDiskAreas('vm-42', 'snapshot-77', 2000, 'old/1', 1 << 20).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(FileFault);
    srv.on('QueryChangedDiskAreas', faultReply('InvalidArgument', 'A specified parameter was not correct: changeId', '<invalidProperty>changeId</invalidProperty>'));
    const e3 = await c.cbt.queryChangedDiskAreas('vm-42', 'snapshot-77', 2000, 'x', 1 << 20).catch((e: unknown) => e);
    expect(e3).toBeInstanceOf(InvalidArgument);
    expect((e3 as InvalidArgument).invalidProperty).toBe('changeId');
    expect((e3 as Error).message).toMatch(/invalid argument "changeId"/);
    await c.close();
  });
});

describe('recorded vCenter: datastore HTTP, service tickets and leases', () => {
  const DISK = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7) & 0xff));
  function serveDisk() {
    srv.httpHandler = (req, res) => {
      const m = /bytes=(\d+)-(\d+)/.exec(String(req.headers.range ?? ''));
      if (!m) {
        res.writeHead(200, { 'content-length': DISK.length }).end(DISK);
        return;
      }
      const a = Number(m[1]);
      const b = Math.min(Number(m[2]), DISK.length - 1);
      res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${DISK.length}` }).end(DISK.subarray(a, b + 1));
    };
  }

  it('/folder Range GET sends the quoted session cookie verbatim and URL-encodes path, dcPath and dsName', async () => {
    srv.withLogin('vmware_soap_session="52aa-quoted"');
    serveDisk();
    const c = await VSphereClient.connect(opts());
    const buf = await c.files.readRange({ datacenter: 'DC 1/Sub', datastore: 'ds&1', path: 'app 01/app01-flat.vmdk' }, 1000, 300);
    expect(buf.equals(DISK.subarray(1000, 1300))).toBe(true);
    const get = srv.requests.find((r) => r.method.startsWith('GET /folder'))!;
    expect(get.method).toBe('GET /folder/app%2001/app01-flat.vmdk?dcPath=DC+1%2FSub&dsName=ds%261');
    expect(get.headers.cookie).toBe('vmware_soap_session="52aa-quoted"');
    expect(get.headers.range).toBe('bytes=1000-1299');
    await c.close();
  });

  it('direct-to-host reads use a single-use service ticket as vmware_cgi_ticket, pin the SHA-1 thumbprint from the ticket and do not send the session', async () => {
    srv.withLogin();
    serveDisk();
    let n = 0;
    srv.on('AcquireGenericServiceTicket', () =>
      ok(`<AcquireGenericServiceTicketResponse xmlns="urn:vim25"><returnval><id>cst-VCT-52${++n}</id><hostName>127.0.0.1</hostName><sslThumbprint>${srv.thumbprintSha1}</sslThumbprint></returnval></AcquireGenericServiceTicketResponse>`),
    );
    const c = await VSphereClient.connect(opts());
    const hostUrl = `${new URL(srv.url).origin}/folder/app01/app01-flat.vmdk?dsName=ds1`;
    expect((await c.files.readRangeDirect(hostUrl, 0, 100)).equals(DISK.subarray(0, 100))).toBe(true);
    expect((await c.files.readRangeDirect(hostUrl, 100, 100)).equals(DISK.subarray(100, 200))).toBe(true);
    const tickets = srv.calls('AcquireGenericServiceTicket');
    expect(tickets).toHaveLength(2);
    expect(tickets[0]!.body).toContain(`<spec xsi:type="SessionManagerHttpServiceRequestSpec"><method>httpGet</method><url>${hostUrl.replace(/&/g, '&amp;')}</url></spec>`);
    const gets = srv.requests.filter((r) => r.method.startsWith('GET /folder'));
    expect(gets.map((g) => g.headers.cookie)).toEqual(['vmware_cgi_ticket=cst-VCT-521', 'vmware_cgi_ticket=cst-VCT-522']);
    // a ticket whose host thumbprint does not match is refused
    srv.on('AcquireGenericServiceTicket', ok(`<AcquireGenericServiceTicketResponse xmlns="urn:vim25"><returnval><id>t</id><sslThumbprint>${'AB:'.repeat(19)}AB</sslThumbprint></returnval></AcquireGenericServiceTicketResponse>`));
    await expect(c.files.readRangeDirect(hostUrl, 0, 10)).rejects.toBeInstanceOf(ThumbprintMismatchError);
    await c.close();
  });

  it('ExportSnapshot: waits while the lease initializes, replaces the * host, reports progress, completes', async () => {
    srv.withLogin();
    serveDisk();
    srv.on('ExportSnapshot', ok('<ExportSnapshotResponse xmlns="urn:vim25"><returnval type="HttpNfcLease">session[52a]52b</returnval></ExportSnapshotResponse>'));
    srv.on('RetrievePropertiesEx', (_r, n) =>
      ok(
        '<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="HttpNfcLease">session[52a]52b</obj>' +
          (n < 3
            ? '<propSet><name>state</name><val xsi:type="HttpNfcLeaseState">initializing</val></propSet>'
            : '<propSet><name>info</name><val xsi:type="HttpNfcLeaseInfo"><lease type="HttpNfcLease">session[52a]52b</lease><entity type="VirtualMachine">vm-42</entity>' +
              '<deviceUrl><key>/vm-42/VirtualLsiLogicController0:0</key><importKey>/vm-42/VirtualLsiLogicController0:0</importKey><url>https://*/nfc/52c0ffee/disk-0.vmdk</url><sslThumbprint>AA:BB</sslThumbprint><disk>true</disk><targetId>disk-0.vmdk</targetId><datastoreKey>ds</datastoreKey><fileSize>65536</fileSize></deviceUrl>' +
              '<totalDiskCapacityInKB>64</totalDiskCapacityInKB><leaseTimeout>300</leaseTimeout></val></propSet>' +
              '<propSet><name>state</name><val xsi:type="HttpNfcLeaseState">ready</val></propSet>') +
          '</objects></returnval></RetrievePropertiesExResponse>',
      ),
    );
    srv.on('HttpNfcLeaseProgress', ok('<HttpNfcLeaseProgressResponse xmlns="urn:vim25"></HttpNfcLeaseProgressResponse>'));
    srv.on('HttpNfcLeaseComplete', ok('<HttpNfcLeaseCompleteResponse xmlns="urn:vim25"></HttpNfcLeaseCompleteResponse>'));
    const c = await VSphereClient.connect(opts());
    const lease = await c.leases.exportSnapshot('snapshot-77');
    expect(srv.calls('RetrievePropertiesEx')).toHaveLength(3);
    expect(lease.leaseTimeout).toBe(300);
    expect(lease.deviceUrls).toEqual([
      expect.objectContaining({ url: `https://${new URL(srv.url).host}/nfc/52c0ffee/disk-0.vmdk`, disk: true, fileSize: 65536, targetId: 'disk-0.vmdk' }),
    ]);
    // The disk URL is read whole, with no Range, the session cookie sent.
    const pieces: Buffer[] = [];
    for await (const piece of await lease.stream(lease.deviceUrls[0]!)) pieces.push(piece);
    expect(Buffer.concat(pieces).equals(DISK)).toBe(true);
    const get = srv.requests.find((r) => r.method.startsWith('GET /nfc/'))!;
    expect(get.method).toBe('GET /nfc/52c0ffee/disk-0.vmdk');
    expect(get.headers.range).toBeUndefined();
    expect(get.headers.cookie).toContain('vmware_soap_session');
    await lease.progress(50.4);
    await lease.complete();
    expect(srv.calls('HttpNfcLeaseProgress')[0]!.body).toContain('<percent>50</percent>');
    expect(srv.calls('HttpNfcLeaseComplete')).toHaveLength(1);
    await c.close();
  });

  it('a lease in state error raises its typed fault', async () => {
    srv.withLogin();
    srv.on('ExportVm', ok('<ExportVmResponse xmlns="urn:vim25"><returnval type="HttpNfcLease">session[52a]52c</returnval></ExportVmResponse>'));
    srv.on('RetrievePropertiesEx', ok(
      '<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="HttpNfcLease">session[52a]52c</obj>' +
        '<propSet><name>error</name><val xsi:type="LocalizedMethodFault"><fault xsi:type="FileLocked"><file>[ds1] app01/app01.vmdk</file></fault><localizedMessage>Unable to access file [ds1] app01/app01.vmdk since it is locked</localizedMessage></val></propSet>' +
        '<propSet><name>state</name><val xsi:type="HttpNfcLeaseState">error</val></propSet></objects></returnval></RetrievePropertiesExResponse>',
    ));
    const c = await VSphereClient.connect(opts());
    const err = await c.leases.exportVm('vm-42').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileFault);
    expect((err as FileFault).isRetriable()).toBe(true); // locked files may free up
    expect((err as Error).message).toMatch(/ExportVm on vm-42 failed: file is locked: \[ds1\] app01\/app01.vmdk/);
    await c.close();
  });

  it('waiting for a task can be aborted with an AbortSignal; the task is cancelled', async () => {
    srv.withLogin();
    srv.on('CreateSnapshot_Task', ok('<CreateSnapshot_TaskResponse xmlns="urn:vim25"><returnval type="Task">task-1234</returnval></CreateSnapshot_TaskResponse>'));
    srv.on('CancelTask', ok('<CancelTaskResponse xmlns="urn:vim25"></CancelTaskResponse>'));
    srv.on('RetrievePropertiesEx', ok(fixture('task-running.xml').replace('PROGRESS', '3')));
    const c = await VSphereClient.connect(opts());
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('job cancelled by operator')), 300);
    await expect(c.snapshots.create('vm-42', { runId: 'r', signal: ac.signal })).rejects.toThrow('job cancelled by operator');
    expect(srv.calls('CancelTask')).toHaveLength(1);
    await c.close();
  });
});

describe('recorded vCenter: session renewal with session-scoped objects', () => {
  it('when the session expires during an inventory read, it logs in again and recreates the container view', async () => {
    let session = 1;
    srv.withLogin();
    srv.on('Login', () => ok(fixture('Login.xml'), { 'set-cookie': `vmware_soap_session="s${session++}"; Path=/` }));
    let views = 0;
    srv.on('CreateContainerView', () => ok(`<CreateContainerViewResponse xmlns="urn:vim25"><returnval type="ContainerView">session[s${session - 1}]view${++views}</returnval></CreateContainerViewResponse>`));
    srv.on('DestroyView', ok('<DestroyViewResponse xmlns="urn:vim25"></DestroyViewResponse>'));
    srv.on('RetrievePropertiesEx', (r, n) => {
      if (n === 1) return faultReply('NotAuthenticated', 'The session is not authenticated.');
      if (r.body.includes('view1')) return faultReply('ManagedObjectNotFound', 'The object has already been deleted', '<obj type="ContainerView">session[s1]view1</obj>');
      return ok(fixture('vm-properties-page2.xml').replace(/ContinueRetrievePropertiesExResponse/g, 'RetrievePropertiesExResponse'));
    });
    const c = await VSphereClient.connect(opts());
    const vms = await c.inventory.vms();
    expect(vms.map((v) => v.name)).toEqual(['db01']);
    expect(c.relogins).toBe(1);
    expect(srv.calls('CreateContainerView')).toHaveLength(2);
    expect(srv.calls('RetrievePropertiesEx').at(-1)!.body).toContain('view2');
    await c.close();
  });

  it('keep-alive calls CurrentTime periodically while connected and stops on close', async () => {
    srv.withLogin();
    srv.on('CurrentTime', ok('<CurrentTimeResponse xmlns="urn:vim25"><returnval>t</returnval></CurrentTimeResponse>'));
    const c = await VSphereClient.connect(opts({ keepAliveMs: 50 }));
    await new Promise((r) => setTimeout(r, 500));
    await c.close();
    const n = srv.calls('CurrentTime').length;
    expect(n).toBeGreaterThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 250));
    expect(srv.calls('CurrentTime')).toHaveLength(n);
  });

  it('readExtents keeps several Range requests in flight and yields chunks in offset order', async () => {
    srv.withLogin();
    const DISK = Buffer.alloc(1 << 20, 7);
    let inflight = 0;
    let maxInflight = 0;
    srv.httpHandler = (req, res) => {
      inflight++;
      maxInflight = Math.max(maxInflight, inflight);
      const m = /bytes=(\d+)-(\d+)/.exec(String(req.headers.range))!;
      const a = Number(m[1]);
      const b = Number(m[2]);
      // later chunks answer faster, to prove ordering is restored
      setTimeout(() => {
        inflight--;
        res.writeHead(206).end(DISK.subarray(a, b + 1));
      }, 80 - (a / 65536) * 4);
    };
    const c = await VSphereClient.connect(opts());
    const offsets: number[] = [];
    let bytes = 0;
    for await (const { offset, data } of c.files.readExtents({ datacenter: 'DC', datastore: 'ds', path: 'f' }, [{ start: 0, length: 1 << 20 }], { chunkBytes: 65536, concurrency: 5 })) {
      offsets.push(offset);
      bytes += data.length;
    }
    expect(bytes).toBe(1 << 20);
    expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
    expect(maxInflight).toBe(5);
    await c.close();
  });
});

describe('recorded vCenter: robustness', () => {
  it('task polling survives a dropped connection and keeps waiting', async () => {
    srv.withLogin();
    srv.on('CreateSnapshot_Task', ok('<CreateSnapshot_TaskResponse xmlns="urn:vim25"><returnval type="Task">task-1234</returnval></CreateSnapshot_TaskResponse>'));
    srv.on('RetrievePropertiesEx', (_r, n) => (n === 2 ? { body: '', reset: true } : n < 3 ? ok(fixture('task-running.xml').replace('PROGRESS', '20')) : ok(fixture('task-success-snapshot.xml'))));
    const c = await VSphereClient.connect(opts());
    expect(await c.snapshots.create('vm-42', { runId: 'r' })).toBe('snapshot-77');
    expect(srv.calls('RetrievePropertiesEx')).toHaveLength(3);
    await c.close();
  });

  it('a dropped connection on a normal call is a retriable ConnectError', async () => {
    srv.withLogin();
    srv.on('CurrentTime', { body: '', reset: true });
    const c = await VSphereClient.connect(opts());
    const err = await c.keepAlive().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).isRetriable()).toBe(true);
    await c.close();
  });

  it('the password is not reachable by inspecting the client object', async () => {
    srv.withLogin();
    const c = await VSphereClient.connect(opts());
    const { inspect } = await import('node:util');
    expect(inspect(c, { depth: 8, showHidden: true })).not.toContain('right');
    expect(JSON.stringify(Object.keys(c))).not.toContain('password');
    await c.close();
  });

  it('lease device URLs with "*:port" hosts are rewritten to the connected host', async () => {
    srv.withLogin();
    srv.on('ExportVm', ok('<ExportVmResponse xmlns="urn:vim25"><returnval type="HttpNfcLease">52l</returnval></ExportVmResponse>'));
    srv.on('RetrievePropertiesEx', ok(
      '<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="HttpNfcLease">52l</obj>' +
        '<propSet><name>info</name><val xsi:type="HttpNfcLeaseInfo"><deviceUrl><key>k</key><url>https://*:443/nfc/52abc/disk-0.vmdk</url><disk>true</disk></deviceUrl>' +
        '<deviceUrl><key>k2</key><url>https://esx01.example.com/nfc/52abc/disk-1.vmdk</url><disk>true</disk></deviceUrl><leaseTimeout>300</leaseTimeout></val></propSet>' +
        '<propSet><name>state</name><val xsi:type="HttpNfcLeaseState">ready</val></propSet></objects></returnval></RetrievePropertiesExResponse>',
    ));
    srv.on('HttpNfcLeaseAbort', ok('<HttpNfcLeaseAbortResponse xmlns="urn:vim25"></HttpNfcLeaseAbortResponse>'));
    const c = await VSphereClient.connect(opts());
    const lease = await c.leases.exportVm('vm-42');
    expect(lease.deviceUrls.map((u) => u.url)).toEqual([
      `https://${new URL(srv.url).host}/nfc/52abc/disk-0.vmdk`,
      'https://esx01.example.com/nfc/52abc/disk-1.vmdk',
    ]);
    await lease.abort();
    expect(srv.calls('HttpNfcLeaseAbort')).toHaveLength(1);
    await c.close();
  });
});

describe('recorded vCenter: datacenter paths', () => {
  it('datacenters in folders get their inventory path (the dcPath of /folder URLs)', async () => {
    srv.withLogin();
    srv.on('CreateContainerView', ok('<CreateContainerViewResponse xmlns="urn:vim25"><returnval type="ContainerView">session[1]v</returnval></CreateContainerViewResponse>'));
    srv.on('DestroyView', ok('<DestroyViewResponse xmlns="urn:vim25"></DestroyViewResponse>'));
    const obj = (type: string, id: string, props: Record<string, string>) =>
      `<objects><obj type="${type}">${id}</obj>${Object.entries(props)
        .map(([k, v]) => `<propSet><name>${k}</name>${v.startsWith('<') ? v : `<val xsi:type="xsd:string">${v}</val>`}</propSet>`)
        .join('')}</objects>`;
    srv.on('RetrievePropertiesEx', ok(
      '<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval>' +
        obj('Folder', 'group-d5', { name: 'Europe', parent: '<val type="Folder" xsi:type="ManagedObjectReference">group-d1</val>' }) +
        obj('Folder', 'group-d6', { name: 'Paris &amp; Co', parent: '<val type="Folder" xsi:type="ManagedObjectReference">group-d5</val>' }) +
        obj('Datacenter', 'datacenter-2', { name: 'DC1', parent: '<val type="Folder" xsi:type="ManagedObjectReference">group-d6</val>', vmFolder: '<val type="Folder" xsi:type="ManagedObjectReference">group-v3</val>' }) +
        obj('Datacenter', 'datacenter-9', { name: 'Lab', parent: '<val type="Folder" xsi:type="ManagedObjectReference">group-d1</val>' }) +
        '</returnval></RetrievePropertiesExResponse>',
    ));
    const c = await VSphereClient.connect(opts());
    const dcs = await c.inventory.datacenters();
    expect(dcs.map((d) => [d.name, d.path, d.vmFolder])).toEqual([
      ['DC1', 'Europe/Paris & Co/DC1', 'group-v3'],
      ['Lab', 'Lab', ''],
    ]);
    expect(c.files.url({ datacenter: dcs[0]!.path, datastore: 'ds1', path: 'a/b.vmdk' })).toMatch(/\/folder\/a\/b\.vmdk\?dcPath=Europe%2FParis\+%26\+Co%2FDC1&dsName=ds1$/);
    await c.close();
  });
});
