/**
 * vSphere tags through vCenter's vAPI REST endpoints (`/rest/com/vmware/cis/...`): a session of its own,
 * opened with the same account as the SOAP session (vCenter takes HTTP basic authentication there) and sent
 * as the `vmware-api-session-id` header; re-opened once when vCenter answers 401.
 *
 *  - tags(): every tag with its category's name;
 *  - attachedObjects(tagIds): what each tag is attached to, in one call;
 *  - withTags(tree): an inventory tree where each tag is a container of the VMs it is attached to, directly
 *    or through a datacenter, cluster, host or folder that holds them.
 *
 * A standalone ESXi host has no vAPI and no tags. The password never appears in an error or a log.
 */
import type { Ctx } from './context.ts';
import { HttpError, ProtocolError } from './soap/faults.ts';
import type { InventoryContainerInfo, InventoryTree, MoRef } from './types.ts';

const BASE = '/rest/com/vmware/cis';

export interface VSphereTag {
  /** "urn:vmomi:InventoryServiceTag:<uuid>:GLOBAL" */
  id: string;
  name: string;
  categoryId: string;
  categoryName: string;
  description: string;
}

export interface TaggedTree extends InventoryTree {
  /** Why tags are not in the tree (vAPI not reachable, refused the login…); absent when they are. */
  tagsError?: string | undefined;
}

/** What a VM holds (its containers and itself), for matching tag attachments. */
const typesWithVms = new Set(['VirtualMachine', 'Datacenter', 'ClusterComputeResource', 'ComputeResource', 'HostSystem', 'Folder']);

export class TaggingApi {
  private session: Promise<string> | null = null;

  constructor(
    private readonly ctx: Ctx,
    private readonly credentials: () => { username: string; password: string },
  ) {}

  private url(path: string, action?: string): string {
    const u = new URL(this.ctx.soap.url.toString());
    u.pathname = `${BASE}${path}`;
    u.search = action ? `?~action=${action}` : '';
    return u.toString();
  }

  private async login(): Promise<string> {
    const { username, password } = this.credentials();
    const res = await this.ctx.soap.http(this.url('/session'), {
      method: 'POST',
      withSession: false,
      headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`, accept: 'application/json' },
      what: 'vAPI login',
    });
    const body = await res.body.text().catch(() => '');
    if (res.statusCode === 401 || res.statusCode === 403) throw new HttpError(`vCenter's tagging service (vAPI) refused the login of ${username}: HTTP ${res.statusCode}`, res.statusCode);
    if (res.statusCode === 404) throw new HttpError('this server has no vAPI REST endpoint (/rest/com/vmware/cis/session answered 404): tags need a vCenter', 404);
    if (res.statusCode !== 200) throw new HttpError(`vAPI login: HTTP ${res.statusCode}: ${body.slice(0, 200)}`, res.statusCode);
    const id = (JSON.parse(body) as { value?: unknown }).value;
    if (typeof id !== 'string' || !id) throw new ProtocolError('vAPI login answered without a session id');
    return id;
  }

  private async call<T>(method: 'GET' | 'POST', path: string, opts: { action?: string; body?: unknown; what: string }, retried = false): Promise<T> {
    this.session ??= this.login();
    let id: string;
    try {
      id = await this.session;
    } catch (err) {
      this.session = null;
      throw err;
    }
    const res = await this.ctx.soap.http(this.url(path, opts.action), {
      method,
      withSession: false,
      headers: { 'vmware-api-session-id': id, accept: 'application/json', ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      what: opts.what,
    });
    const text = await res.body.text().catch(() => '');
    if (res.statusCode === 401 && !retried) {
      // The vAPI session expired (vCenter drops idle ones): one new login, then the call again.
      this.session = null;
      return this.call(method, path, opts, true);
    }
    if (res.statusCode !== 200) throw new HttpError(`${opts.what}: HTTP ${res.statusCode}${text ? `: ${text.replace(/\s+/g, ' ').slice(0, 200)}` : ''}`, res.statusCode);
    if (!text) return undefined as T;
    return (JSON.parse(text) as { value: T }).value;
  }

  /** Every tag with its category. */
  async tags(): Promise<VSphereTag[]> {
    const ids = (await this.call<string[] | undefined>('GET', '/tagging/tag', { what: 'list tags' })) ?? [];
    const tags = await mapLimit(ids, 8, (id) => this.call<{ id: string; name: string; category_id: string; description?: string }>('GET', `/tagging/tag/id:${encodeURIComponent(id)}`, { what: `read tag ${id}` }));
    const categoryIds = [...new Set(tags.map((t) => t.category_id))];
    const categories = await mapLimit(categoryIds, 8, (id) => this.call<{ id: string; name: string }>('GET', `/tagging/category/id:${encodeURIComponent(id)}`, { what: `read tag category ${id}` }));
    const categoryName = new Map(categories.map((c) => [c.id, c.name]));
    return tags
      .map((t) => ({ id: t.id, name: t.name, categoryId: t.category_id, categoryName: categoryName.get(t.category_id) ?? t.category_id, description: t.description ?? '' }))
      .sort((a, b) => a.categoryName.localeCompare(b.categoryName) || a.name.localeCompare(b.name));
  }

  /** The objects each tag is attached to (tags attached to nothing map to []). */
  async attachedObjects(tagIds: readonly string[]): Promise<Map<string, MoRef[]>> {
    const out = new Map<string, MoRef[]>(tagIds.map((id) => [id, []]));
    if (tagIds.length === 0) return out;
    const res = await this.call<Array<{ tag_id: string; object_ids?: Array<{ id: string; type: string }> }> | undefined>('POST', '/tagging/tag-association', {
      action: 'list-attached-objects-on-tags',
      body: { tag_ids: tagIds },
      what: 'list objects of tags',
    });
    for (const r of res ?? []) out.set(r.tag_id, (r.object_ids ?? []).map((o) => ({ type: o.type, value: o.id })));
    return out;
  }

  async createCategory(name: string, opts: { cardinality?: 'SINGLE' | 'MULTIPLE'; description?: string } = {}): Promise<string> {
    return this.call<string>('POST', '/tagging/category', {
      body: { create_spec: { name, description: opts.description ?? '', cardinality: opts.cardinality ?? 'MULTIPLE', associable_types: [] } },
      what: `create tag category ${name}`,
    });
  }

  async createTag(categoryId: string, name: string, description = ''): Promise<string> {
    return this.call<string>('POST', '/tagging/tag', { body: { create_spec: { name, description, category_id: categoryId } }, what: `create tag ${name}` });
  }

  async attach(tagId: string, obj: MoRef): Promise<void> {
    await this.call('POST', `/tagging/tag-association/id:${encodeURIComponent(tagId)}`, { action: 'attach', body: { object_id: { id: obj.value, type: obj.type } }, what: `attach tag to ${obj.value}` });
  }

  async detach(tagId: string, obj: MoRef): Promise<void> {
    await this.call('POST', `/tagging/tag-association/id:${encodeURIComponent(tagId)}`, { action: 'detach', body: { object_id: { id: obj.value, type: obj.type } }, what: `detach tag from ${obj.value}` });
  }

  /**
   * `tree` with each tag as a container (kind `tag`, path "Category/Tag") holding the VMs it is attached to,
   * directly or through a container that holds them. When tags cannot be read, the tree is returned as it
   * is, with `tagsError` saying why (a job choosing by tag must not run as if its tags were empty).
   */
  async withTags(tree: InventoryTree): Promise<TaggedTree> {
    let tags: VSphereTag[];
    let attached: Map<string, MoRef[]>;
    try {
      tags = await this.tags();
      attached = await this.attachedObjects(tags.map((t) => t.id));
    } catch (err) {
      return { ...tree, tagsError: (err as Error).message };
    }
    const containers: InventoryContainerInfo[] = [...tree.containers];
    const vmTags = new Map<string, string[]>();
    for (const t of tags) {
      containers.push({ kind: 'tag', moref: t.id, name: t.name, path: `${t.categoryName}/${t.name}`, parent: null, datacenter: '' });
      const objects = new Set((attached.get(t.id) ?? []).filter((o) => typesWithVms.has(o.type)).map((o) => o.value));
      if (objects.size === 0) continue;
      for (const vm of tree.vms) {
        if (objects.has(vm.moref) || vm.placement.containers.some((c) => objects.has(c))) {
          const list = vmTags.get(vm.moref) ?? [];
          list.push(t.id);
          vmTags.set(vm.moref, list);
        }
      }
    }
    return {
      containers,
      vms: tree.vms.map((vm) => {
        const ids = vmTags.get(vm.moref);
        return ids ? { ...vm, placement: { ...vm.placement, containers: [...vm.placement.containers, ...ids] } } : vm;
      }),
    };
  }

  /** Ends the vAPI session, if one was opened (errors ignored: the SOAP logout follows). */
  async logout(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (!s) return;
    const id = await s.catch(() => null);
    if (!id) return;
    const res = await this.ctx.soap
      .http(this.url('/session'), { method: 'DELETE', withSession: false, headers: { 'vmware-api-session-id': id }, what: 'vAPI logout', timeoutMs: 5000 })
      .catch(() => null);
    await res?.body.dump().catch(() => undefined);
  }
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
