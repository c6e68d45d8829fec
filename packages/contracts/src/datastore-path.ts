/**
 * vSphere's datastore paths ("[ds1] app01/app01.vmdk"): one reading for the vSphere client and the engine
 * (which names the files it creates and writes without importing the client).
 */

/** "[ds1] app01/app01.vmdk" -> { datastore: "ds1", path: "app01/app01.vmdk" } */
export function parseDatastorePath(p: string): { datastore: string; path: string } {
  const m = /^\[([^\]]+)\]\s*(.*)$/.exec(p);
  if (!m) throw new TypeError(`not a datastore path: ${p}`);
  return { datastore: m[1]!, path: m[2]! };
}

/** The flat extent of a flat-backed descriptor: "x.vmdk" -> "x-flat.vmdk". */
export function flatExtentPath(descriptorPath: string): string {
  return descriptorPath.replace(/\.vmdk$/, '-flat.vmdk');
}
