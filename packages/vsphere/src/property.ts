/**
 * PropertyCollector helpers: RetrievePropertiesEx with the full
 * ContinueRetrievePropertiesEx paging loop (a page carries a `token` while
 * more objects remain; the simulator never pages, vCenter does above
 * `maxObjects`), and ContainerView traversal.
 */
import type { SoapClient } from './soap/client.ts';
import { makeFault, ManagedObjectNotFound, ProtocolError, type VimFault } from './soap/faults.ts';
import { parseLocalizedFault } from './soap/client.ts';
import { child, children, el, join, ref, text, typed, val, type MoRef, type Xml, type XmlNode } from './soap/xml.ts';

export interface ObjectContent {
  obj: MoRef;
  /** property path -> `<val>` element */
  props: Map<string, XmlNode>;
  /** properties the server could not read, with the reason */
  missing: { path: string; fault: VimFault }[];
}

export interface PropertyQuery {
  /** property paths per managed object type */
  propSets: { type: string; paths: string[] }[];
  /** either explicit objects, or a ContainerView to traverse */
  objects?: MoRef[];
  view?: MoRef;
  /** page size asked for (the server may ignore it) */
  maxObjects?: number;
}

export function propSpecXml(type: string, paths: string[]): Xml {
  return el('propSet', join([val('type', type), ...(paths.length ? paths.map((p) => val('pathSet', p)) : [val('all', true)])]));
}

export function specSetXml(q: PropertyQuery): Xml {
  const props = q.propSets.map((p) => propSpecXml(p.type, p.paths));
  let objs: Xml[];
  if (q.view) {
    objs = [
      el(
        'objectSet',
        join([
          ref('obj', q.view),
          val('skip', true),
          typed('selectSet', 'TraversalSpec', join([val('name', 'traverseView'), val('type', 'ContainerView'), val('path', 'view'), val('skip', false)])),
        ]),
      ),
    ];
  } else {
    objs = (q.objects ?? []).map((o) => el('objectSet', join([ref('obj', o), val('skip', false)])));
  }
  return el('specSet', join([...props, ...objs]));
}

function parseObjects(ret: XmlNode | undefined, out: ObjectContent[]): string | undefined {
  if (!ret) return undefined;
  for (const o of children(ret, 'objects')) {
    const objEl = child(o, 'obj');
    if (!objEl) throw new ProtocolError('RetrievePropertiesEx: object without obj');
    const props = new Map<string, XmlNode>();
    for (const p of children(o, 'propSet')) {
      const name = text(p, 'name');
      const v = child(p, 'val');
      if (name !== undefined && v) props.set(name, v);
    }
    const missing = children(o, 'missingSet').map((m) => ({
      path: text(m, 'path') ?? '',
      fault: parseLocalizedFault(m, `reading ${text(m, 'path') ?? 'a property'} of ${objEl.text}`),
    }));
    out.push({ obj: { type: objEl.attrs.type ?? '', value: objEl.text }, props, missing });
  }
  return text(ret, 'token');
}

/** RetrievePropertiesEx + ContinueRetrievePropertiesEx until no token is left. */
export async function retrieveProperties(soap: SoapClient, collector: MoRef, q: PropertyQuery, context?: string): Promise<ObjectContent[]> {
  const out: ObjectContent[] = [];
  const body = join([
    ref('_this', collector),
    specSetXml(q),
    el('options', q.maxObjects ? val('maxObjects', q.maxObjects) : ''),
  ]);
  let token = parseObjects(await soap.returnval('RetrievePropertiesEx', body, { context: context ?? 'RetrievePropertiesEx' }), out);
  let pages = 1;
  try {
    while (token) {
      if (++pages > 100_000) throw new ProtocolError('RetrievePropertiesEx: paging does not end');
      const next = await soap.returnval('ContinueRetrievePropertiesEx', join([ref('_this', collector), val('token', token)]), {
        context: context ?? 'ContinueRetrievePropertiesEx',
      });
      token = parseObjects(next, out);
    }
  } catch (e) {
    if (token) {
      await soap
        .call('CancelRetrievePropertiesEx', join([ref('_this', collector), val('token', token)]), { timeoutMs: 5000 })
        .catch(() => undefined);
    }
    throw e;
  }
  return out;
}

/**
 * Creates a ContainerView, runs `fn`, destroys the view. Views belong to the
 * session: if the session was renewed (transparent re-login) while `fn` ran
 * and the view is therefore gone, the view is recreated and `fn` runs once more.
 */
export async function withContainerView<T>(
  soap: SoapClient,
  viewManager: MoRef,
  container: MoRef,
  types: string[],
  fn: (view: MoRef) => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const epoch = soap.sessionEpoch;
    const r = await soap.returnval(
      'CreateContainerView',
      join([ref('_this', viewManager), ref('container', container), ...types.map((t) => val('type', t)), val('recursive', true)]),
    );
    if (!r) throw new ProtocolError('CreateContainerView returned nothing');
    const view = { type: r.attrs.type ?? 'ContainerView', value: r.text };
    try {
      return await fn(view);
    } catch (e) {
      if (attempt === 0 && soap.sessionEpoch !== epoch && e instanceof ManagedObjectNotFound) continue;
      throw e;
    } finally {
      await soap.call('DestroyView', ref('_this', view), { timeoutMs: 10_000 }).catch(() => undefined);
    }
  }
}

/** Reads properties of one object; throws ManagedObjectNotFound for an unknown moref. */
export async function readObject(soap: SoapClient, collector: MoRef, obj: MoRef, paths: string[]): Promise<ObjectContent> {
  const r = await retrieveProperties(soap, collector, { propSets: [{ type: obj.type, paths }], objects: [obj] }, `reading ${obj.type} ${obj.value}`);
  const o = r[0];
  if (!o) {
    // vCenter answers an empty result for some deleted objects instead of a fault
    throw makeFault({
      faultType: 'ManagedObjectNotFound',
      serverMessage: '',
      context: `reading ${obj.type} ${obj.value}`,
      detail: { name: 'ManagedObjectNotFoundFault', ns: '', attrs: {}, xsiType: 'ManagedObjectNotFound', text: '', children: [{ name: 'obj', ns: '', attrs: { type: obj.type }, xsiType: undefined, text: obj.value, children: [] }] },
    });
  }
  return o;
}
