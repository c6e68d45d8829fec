// SOAP helpers for the lab tests (raw XML over HTTPS with the lab's pinned certificate).
import { SoapFault, tag, tags, type SoapClient } from '../src/soap.ts';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface Area {
  start: number;
  length: number;
}

export async function createSnapshot(soap: SoapClient, vm: string, name = 'backup', quiesce = false): Promise<string> {
  return soap.task(
    `<CreateSnapshot_Task><_this type="VirtualMachine">${vm}</_this><name>${name}</name>` +
      `<memory>false</memory><quiesce>${quiesce}</quiesce></CreateSnapshot_Task>`,
  );
}

export async function removeSnapshot(soap: SoapClient, snapshot: string): Promise<void> {
  await soap.task(
    `<RemoveSnapshot_Task><_this type="VirtualMachineSnapshot">${snapshot}</_this>` +
      `<removeChildren>false</removeChildren><consolidate>true</consolidate></RemoveSnapshot_Task>`,
  );
}

/** One QueryChangedDiskAreas call. */
export async function qcda(
  soap: SoapClient,
  vm: string,
  snapshot: string | undefined,
  deviceKey: number,
  startOffset: number,
  changeId: string,
): Promise<{ startOffset: number; length: number; areas: Area[] }> {
  const xml = await soap.call(
    `<QueryChangedDiskAreas><_this type="VirtualMachine">${vm}</_this>` +
      (snapshot ? `<snapshot type="VirtualMachineSnapshot">${snapshot}</snapshot>` : '') +
      `<deviceKey>${deviceKey}</deviceKey><startOffset>${startOffset}</startOffset><changeId>${changeId}</changeId></QueryChangedDiskAreas>`,
  );
  const ret = tag(xml, 'returnval') ?? '';
  const areas = tags(ret, 'changedArea').map((a) => ({ start: Number(tag(a, 'start')), length: Number(tag(a, 'length')) }));
  const head = ret.replace(/<changedArea>[\s\S]*?<\/changedArea>/g, '');
  return { startOffset: Number(tag(head, 'startOffset')), length: Number(tag(head, 'length')), areas };
}

/** The paging loop a backup client runs: call until startOffset reaches the capacity. */
export async function qcdaAll(
  soap: SoapClient,
  vm: string,
  snapshot: string | undefined,
  deviceKey: number,
  capacity: number,
  changeId: string,
): Promise<{ areas: Area[]; calls: number }> {
  const areas: Area[] = [];
  let offset = 0;
  let calls = 0;
  while (offset < capacity) {
    const r = await qcda(soap, vm, snapshot, deviceKey, offset, changeId);
    calls++;
    if (r.length <= 0) throw new Error('no progress');
    areas.push(...r.areas);
    offset = r.startOffset + r.length;
  }
  return { areas, calls };
}

/** Disk devices of a VM or snapshot as seen over SOAP (config.hardware.device). */
export async function soapDisks(
  soap: SoapClient,
  type: 'VirtualMachine' | 'VirtualMachineSnapshot',
  moref: string,
): Promise<{ key: number; fileName: string; changeId: string; uuid: string; parent?: string }[]> {
  const xml = await soap.retrieve(type, moref, ['config.hardware.device']);
  const out = [];
  for (const m of xml.matchAll(/<VirtualDevice\b[^>]*type="VirtualDisk"[^>]*>([\s\S]*?)<\/VirtualDevice>/g)) {
    const d = m[1] ?? '';
    const backing = /<backing\b[^>]*>([\s\S]*)<\/backing>/.exec(d)?.[1] ?? '';
    const parent = /<parent\b[^>]*>([\s\S]*)<\/parent>/.exec(backing)?.[1];
    const own = backing.replace(/<parent\b[\s\S]*<\/parent>/, '');
    out.push({
      key: Number(tag(d, 'key')),
      fileName: tag(own, 'fileName') ?? '',
      changeId: tag(own, 'changeId') ?? '',
      uuid: tag(own, 'uuid') ?? '',
      parent: parent ? tag(parent, 'fileName') : undefined,
    });
  }
  return out;
}

export function aligned(start: number, length: number, block = 64 * KiB): Area {
  const s = Math.floor(start / block) * block;
  const e = Math.ceil((start + length) / block) * block;
  return { start: s, length: e - s };
}

/** The SOAP fault `p` fails with (anything else, or success, fails the test). */
export async function fault(p: Promise<unknown>): Promise<SoapFault> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SoapFault) return e;
    throw e;
  }
  throw new Error('expected a SOAP fault');
}
