/**
 * The lab's vAPI REST endpoints (vCenter's tagging): the session login takes only the lab's account, as
 * vCenter's does (the stock simulator takes any); tags attach and detach through the vAPI; /lab/vapi-down
 * stops the endpoint (503) while SOAP keeps answering.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../src/index.ts';
import { httpRequest } from '../src/soap.ts';

describe('lab vAPI: tags', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ port: 0, hotadd: false });
    await lab.createVm({ name: 'tag-me', disks: [{ capacityBytes: 4 * 1024 * 1024 }] });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  const login = (user: string, password: string) =>
    httpRequest(`${new URL(lab.url).origin}/rest/com/vmware/cis/session`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` }, ca: lab.certPem });
  const attached = async (tagId: string) => {
    const s = JSON.parse((await login(lab.username, lab.password)).body.toString()).value as string;
    const res = await httpRequest(`${new URL(lab.url).origin}/rest/com/vmware/cis/tagging/tag-association?~action=list-attached-objects-on-tags`, {
      method: 'POST',
      headers: { 'vmware-api-session-id': s, 'content-type': 'application/json' },
      body: JSON.stringify({ tag_ids: [tagId] }),
      ca: lab.certPem,
    });
    return ((JSON.parse(res.body.toString()).value as Array<{ object_ids?: Array<{ id: string }> }>)[0]?.object_ids ?? []).map((o) => o.id);
  };

  it('logs in only with the lab account', async () => {
    expect((await login(lab.username, lab.password)).status).toBe(200);
    const wrong = await login(lab.username, 'not-the-password');
    expect(wrong.status).toBe(401);
    expect(wrong.body.toString()).toContain('unauthenticated');
    expect((await login('someone', lab.password)).status).toBe(401);
  });

  it('tags a VM (creating the category and tag once), and untags it', async () => {
    const vm = await lab.getVm('tag-me');
    const id = await lab.tagVm('Lab', 'nightly', 'tag-me');
    expect(id).toMatch(/^urn:vmomi:InventoryServiceTag:/);
    expect(await attached(id)).toEqual([vm.moref]);
    expect(await lab.tagVm('Lab', 'nightly', 'tag-me')).toBe(id);
    await lab.tagVm('Lab', 'nightly', 'tag-me', false);
    expect(await attached(id)).toEqual([]);
  });

  it('vapi-down answers every vAPI request with 503 while SOAP keeps answering, until it is brought back', async () => {
    await lab.vapiDown(true);
    try {
      expect((await login(lab.username, lab.password)).status).toBe(503);
      expect((await lab.getVm('tag-me')).name).toBe('tag-me');
    } finally {
      await lab.vapiDown(false);
    }
    expect((await login(lab.username, lab.password)).status).toBe(200);
  });
});
