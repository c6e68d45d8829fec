import { useMemo, useState, type ReactNode } from 'react';
import { isContainerSource, vmsInContainer, type ContainerSource, type InventoryContainer, type InventoryTree, type InventoryVm, type VCenter, type VmSource } from '@vaultline/contracts';
import { useInventoryTree } from '../../../api/vcenters.ts';
import { formatBytes, powerLabel } from '../../../lib/format.ts';
import { sameVm, type Source, type WizardState } from './state.ts';

const SCSI = new Set(['pvscsi', 'lsilogic', 'lsisas', 'buslogic']);

const asSource = (vm: InventoryVm): Source => ({ moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}) });
const asExcluded = (vm: InventoryVm) => ({ moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}) });
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** What an operator should know before picking a VM, in the Transporter's own terms. */
function vmNotes(vm: InventoryVm): string[] {
  const notes: string[] = [];
  const nonScsi = [...new Set(vm.disks.filter((d) => !SCSI.has(d.controller)).map((d) => d.controller.toUpperCase()))];
  if (nonScsi.length) notes.push(`${nonScsi.join('/')} disk: no HotAdd for it`);
  const independent = vm.disks.filter((d) => d.diskMode?.startsWith('independent'));
  if (independent.length) notes.push(`${independent.map((d) => d.label).join(', ')} independent: snapshots do not cover it, not backed up`);
  if (!vm.changeTrackingEnabled) notes.push('CBT off: turned on at the first backup if “Enable CBT” is set');
  if (vm.disks.length === 0) notes.push('no disks');
  return notes;
}

function controllers(vm: InventoryVm): string {
  const count = new Map<string, number>();
  for (const d of vm.disks) count.set(d.controller, (count.get(d.controller) ?? 0) + 1);
  return [...count].map(([c, n]) => (n > 1 ? `${c} ×${n}` : c)).join(', ') || '—';
}

/** The review's line for each VM source that leaves disks out: "db-01 without Hard disk 2". */
export function DisksLeftOut({ vcenterId, sources }: { vcenterId: string; sources: Source[] }) {
  const inventory = useInventoryTree(vcenterId || undefined);
  const vms = sources.filter((s): s is VmSource => !isContainerSource(s) && (s.excludeDisks?.length ?? 0) > 0);
  return vms.map((s) => {
    const disks = inventory.data?.vms.find((vm) => sameVm(s, vm))?.disks ?? [];
    const labels = s.excludeDisks!.map((k) => disks.find((d) => d.key === k)?.label ?? `disk ${k}`);
    return (
      <div key={s.instanceUuid ?? s.moref} data-testid="review-disks-left-out">
        {s.name} without {labels.join(', ')}
      </div>
    );
  });
}

type View = 'hosts' | 'folders' | 'tags';
interface TreeNode {
  key: string;
  container?: InventoryContainer;
  vm?: InventoryVm;
  /** A tag category: a heading over its tags, not a source itself. */
  category?: string;
  children: TreeNode[];
}

const KIND_LABEL: Record<InventoryContainer['kind'], string> = { datacenter: 'datacenter', cluster: 'cluster', host: 'host', folder: 'folder', tag: 'tag' };

/** Tags and the inventory's containers are two families: a path of one never holds the other's. */
const sameFamily = (a: { kind: string }, b: { kind: string }) => (a.kind === 'tag') === (b.kind === 'tag');

/** The inventory as a tree: datacenter → cluster → host → VMs, datacenter → VM folders → VMs, or tag category → tag → VMs. */
function buildTree(inv: InventoryTree, view: View): TreeNode[] {
  const vmNode = (vm: InventoryVm): TreeNode => ({ key: `vm:${vm.moref}`, vm, children: [] });
  const byName = (a: TreeNode, b: TreeNode) => (a.vm ? 1 : 0) - (b.vm ? 1 : 0) || (a.container?.name ?? a.vm?.name ?? '').localeCompare(b.container?.name ?? b.vm?.name ?? '');
  if (view === 'tags') {
    const categories = new Map<string, TreeNode[]>();
    for (const c of inv.containers.filter((x) => x.kind === 'tag')) {
      const category = c.path.slice(0, c.path.length - c.name.length - 1) || c.path;
      const tag: TreeNode = { key: `tag:${c.moref}`, container: c, children: vmsInContainer(inv, c.moref).map(vmNode).sort(byName) };
      categories.set(category, [...(categories.get(category) ?? []), tag]);
    }
    return [...categories]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([category, tags]) => ({ key: `category:${category}`, category, children: tags.sort(byName) }));
  }
  const kinds = view === 'hosts' ? ['cluster', 'host'] : ['folder'];
  const inView = inv.containers.filter((c) => kinds.includes(c.kind));
  const known = new Set(inView.map((c) => c.moref));
  const nodeOf = (c: InventoryContainer): TreeNode => {
    const children = inView.filter((x) => x.parent === c.moref).map(nodeOf);
    // The VMs directly in it: a host's VMs; a folder's own VMs; a datacenter's VMs that no listed container of this view holds.
    const direct = inv.vms.filter((vm) => {
      if (c.kind === 'host') return vm.host === c.moref;
      if (c.kind === 'folder') return vm.folder === c.moref;
      if (c.kind === 'datacenter') return vm.datacenter === c.moref && !(view === 'hosts' ? vm.host && known.has(vm.host) : vm.folder && known.has(vm.folder));
      return false;
    });
    return { key: `${c.kind}:${c.moref}`, container: c, children: [...children, ...direct.map(vmNode)].sort(byName) };
  };
  const roots = inv.containers.filter((c) => c.kind === 'datacenter').map(nodeOf);
  // VMs without a datacenter (a Director older than container support): a flat list.
  const loose = inv.vms.filter((vm) => !vm.datacenter || !inv.containers.some((c) => c.moref === vm.datacenter)).map(vmNode);
  return [...roots, ...loose];
}

export function SourcesStep({ state, set, vcenters }: { state: WizardState; set: (patch: Partial<WizardState>) => void; vcenters: VCenter[] }) {
  const [query, setQuery] = useState('');
  const [view, setView] = useState<View>('hosts');
  const [open, setOpen] = useState<Record<string, boolean>>({});
  const inventory = useInventoryTree(state.vcenterId || undefined);
  const inv = useMemo<InventoryTree>(() => inventory.data ?? { vms: [], containers: [] }, [inventory.data]);
  const tree = useMemo(() => buildTree(inv, view), [inv, view]);
  const hostName = useMemo(() => new Map(inv.containers.filter((c) => c.kind === 'host').map((c) => [c.moref, c.name])), [inv]);
  const counts = useMemo(() => new Map(inv.containers.map((c) => [c.moref, vmsInContainer(inv, c.moref).length])), [inv]);
  const q = query.trim().toLowerCase();

  const containerSources = state.sources.filter(isContainerSource);
  const selectedContainer = (moref: string) => containerSources.find((s) => s.moref === moref);
  const containerOf = (moref: string) => inv.containers.find((c) => c.moref === moref);
  /** The selected container above `c` (its datacenter, cluster or parent folder), if any. */
  const selectedAncestor = (c: InventoryContainer): ContainerSource | undefined => containerSources.find((s) => sameFamily(s, c) && c.path.startsWith(`${(containerOf(s.moref) ?? s).path}/`));
  const holding = (vm: InventoryVm) => containerSources.filter((s) => vm.containers?.includes(s.moref));
  const includedBy = (vm: InventoryVm) => holding(vm).filter((s) => !s.exclude?.some((x) => sameVm(x, vm)));
  const chosen = (vm: InventoryVm) => state.sources.some((s) => !isContainerSource(s) && sameVm(s, vm));
  const isChecked = (vm: InventoryVm) => chosen(vm) || includedBy(vm).length > 0;
  /** The VM's own source (chosen by itself, or made one to leave disks out), and the disks it leaves out. */
  const ownSource = (vm: InventoryVm) => state.sources.find((s): s is VmSource => !isContainerSource(s) && sameVm(s, vm));
  const leftOut = (vm: InventoryVm) => ownSource(vm)?.excludeDisks ?? [];

  /** A disk's checkbox: unchecked, its key joins the VM source's `excludeDisks` (a VM only in a container becomes a source of its own). */
  const toggleDisk = (vm: InventoryVm, key: number) => {
    const own = ownSource(vm);
    const before = own?.excludeDisks ?? [];
    const excludeDisks = before.includes(key) ? before.filter((k) => k !== key) : [...before, key].sort((a, b) => a - b);
    if (!own) {
      const source: VmSource = { moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}), excludeDisks };
      set({ sources: [...state.sources, source] });
      return;
    }
    // Every disk again: a VM made a source of its own only to leave disks out goes back to being in its container.
    if (excludeDisks.length === 0 && includedBy(vm).length > 0) {
      set({ sources: state.sources.filter((s) => s !== own) });
      return;
    }
    const rest: VmSource = { ...(own.kind ? { kind: own.kind } : {}), moref: own.moref, name: own.name, ...(own.instanceUuid ? { instanceUuid: own.instanceUuid } : {}) };
    set({ sources: state.sources.map((s) => (s === own ? (excludeDisks.length ? { ...rest, excludeDisks } : rest) : s)) });
  };

  const toggleVm = (vm: InventoryVm) => {
    if (isChecked(vm)) {
      // Unchecked inside a selected container: an exclusion of that container.
      let sources = state.sources.filter((s) => isContainerSource(s) || !sameVm(s, vm));
      for (const c of includedBy(vm)) sources = sources.map((x) => (x === c ? { ...c, exclude: [...(c.exclude ?? []), asExcluded(vm)] } : x));
      set({ sources });
      return;
    }
    const excludedFrom = holding(vm);
    if (excludedFrom.length > 0) {
      let sources = state.sources;
      for (const c of excludedFrom) {
        const exclude = (c.exclude ?? []).filter((x) => !sameVm(x, vm));
        const rest: ContainerSource = { kind: c.kind, moref: c.moref, name: c.name, path: c.path };
        sources = sources.map((x) => (x === c ? (exclude.length ? { ...rest, exclude } : rest) : x));
      }
      set({ sources });
    } else set({ sources: [...state.sources, asSource(vm)] });
  };
  const toggleContainer = (c: InventoryContainer) => {
    const s = selectedContainer(c.moref);
    if (s) {
      set({ sources: state.sources.filter((x) => x !== s) });
      return;
    }
    // Its VMs chosen one by one and the containers below it are now in it.
    const inside = new Set(vmsInContainer(inv, c.moref).map((vm) => vm.moref));
    const sources = state.sources.filter((x) => (isContainerSource(x) ? !(sameFamily(x, c) && (containerOf(x.moref) ?? x).path.startsWith(`${c.path}/`)) : !inside.has(x.moref)));
    set({ sources: [...sources, { kind: c.kind, moref: c.moref, name: c.name, path: c.path }] });
  };

  const vmMatches = (vm: InventoryVm) => [vm.name, vm.guestId, vm.host, vm.host ? hostName.get(vm.host) : undefined, vm.moref].some((f) => f?.toLowerCase().includes(q));
  const nodeMatches = (n: TreeNode) => (n.vm ? vmMatches(n.vm) : n.category !== undefined ? n.category.toLowerCase().includes(q) : [n.container!.name, n.container!.path].some((f) => f.toLowerCase().includes(q)));
  /** The nodes shown for the search: a match with all below it, and the way down to matches below. */
  const filter = (nodes: TreeNode[]): TreeNode[] => {
    if (!q) return nodes;
    const out: TreeNode[] = [];
    for (const n of nodes) {
      if (nodeMatches(n)) out.push(n);
      else {
        const children = filter(n.children);
        if (children.length > 0) out.push({ ...n, children, key: n.key });
      }
    }
    return out;
  };
  const shown = filter(tree);
  const shownVms = (nodes: TreeNode[]): number => nodes.reduce((n, x) => n + (x.vm ? 1 : 0) + shownVms(x.children), 0);
  const manyVms = inv.vms.length > 60;
  const isOpen = (n: TreeNode) => open[n.key] ?? (q ? true : (n.container?.kind !== 'host' && n.container?.kind !== 'tag') || !manyVms);

  const missing = inventory.data
    ? state.sources.filter((s) => (isContainerSource(s) ? !inv.containers.some((c) => c.moref === s.moref) : !inv.vms.some((vm) => sameVm(s, asSource(vm)))))
    : [];
  const expanded = useMemo(() => {
    const vms = new Map<string, InventoryVm>();
    for (const s of state.sources) {
      if (isContainerSource(s)) {
        for (const vm of vmsInContainer(inv, s.moref)) if (!s.exclude?.some((x) => sameVm(x, vm))) vms.set(vm.instanceUuid ?? vm.moref, vm);
      } else vms.set(s.instanceUuid ?? s.moref, inv.vms.find((vm) => sameVm(s, vm)) ?? ({ moref: s.moref, name: s.name } as InventoryVm));
    }
    return vms.size;
  }, [state.sources, inv]);

  const renderVm = (n: TreeNode, level: number) => {
    const vm = n.vm!;
    const checked = isChecked(vm);
    const by = includedBy(vm);
    const excluded = !checked && holding(vm).length > 0;
    const id = `src-${vm.moref}`;
    return (
      <li key={n.key} className={`tree-node vm${checked ? ' selected' : ''}`} data-testid="pick-vm" style={{ ['--level' as string]: level }}>
        <div className="tree-row">
          <span className="twisty" aria-hidden="true" />
          <input id={id} type="checkbox" aria-label={`Select ${vm.name}`} checked={checked} onChange={() => toggleVm(vm)} />
          <label htmlFor={id} className="tree-label">
            <strong>{vm.name}</strong> <span className={`power ${vm.powerState}`}>{powerLabel(vm.powerState)}</span>
            <span className="muted small block">
              {vm.guestId ?? 'unknown guest OS'}
              {` · ${(vm.host ? hostName.get(vm.host) : undefined) ?? 'host not reported'}`}
              {vm.cpus !== undefined && ` · ${vm.cpus} vCPU`}
              {vm.memoryMiB !== undefined && ` · ${formatBytes(vm.memoryMiB * 1048576)}`}
            </span>
          </label>
        </div>
        <div className="tree-detail small">
          {vm.disks.map((d) => {
            const out = leftOut(vm).includes(d.key);
            // The last disk backed up cannot be left out too: to skip the VM, uncheck the VM.
            const last = !out && vm.disks.every((x) => x.key === d.key || leftOut(vm).includes(x.key));
            return (
              <div key={d.key} data-testid="vm-disk">
                {checked && (
                  <input
                    type="checkbox"
                    aria-label={`Back up ${d.label} of ${vm.name}`}
                    checked={!out}
                    disabled={last}
                    title={last ? `To skip ${vm.name}, uncheck the VM` : undefined}
                    onChange={() => toggleDisk(vm, d.key)}
                  />
                )}{' '}
                {d.label}: {formatBytes(d.capacityBytes)} · {d.controller}
                {d.busNumber !== undefined && d.unitNumber !== undefined && ` ${d.busNumber}:${d.unitNumber}`}
                {d.thin && ' · thin'}
                {d.datastore && <span className="muted"> · {d.datastore}</span>}
                {checked && out && <strong> · left out</strong>}
              </div>
            );
          })}
          {checked && by.length > 0 && vm.disks.length > 1 && (
            <div className="muted" data-testid="disk-note">
              {chosen(vm)
                ? `Chosen by itself to leave disks out; with every disk checked again it is backed up as part of ${by.map((s) => `${s.kind} ${s.name}`).join(', ')} only.`
                : `Unchecking a disk adds ${vm.name} to the job as a VM source of its own that leaves that disk out; ${by.map((s) => `${s.kind} ${s.name}`).join(', ')} still brings in its other VMs.`}
            </div>
          )}
          <div className="muted">Controllers: {controllers(vm)}</div>
          {vmNotes(vm).map((note) => (
            <div key={note} className="muted">
              {note}
            </div>
          ))}
          {by.length > 0 && !chosen(vm) && <div className="muted">In {by.map((s) => `${s.kind} ${s.name}`).join(', ')}</div>}
          {excluded && <div className="muted">Excluded from {holding(vm).map((s) => `${s.kind} ${s.name}`).join(', ')}</div>}
        </div>
      </li>
    );
  };

  const renderCategory = (n: TreeNode, level: number): ReactNode => {
    const expandedNode = isOpen(n);
    const label = `tag category ${n.category}`;
    return (
      <li key={n.key} className="tree-node category" data-testid="tag-category" style={{ ['--level' as string]: level }}>
        <div className="tree-row">
          <button type="button" className="twisty" aria-expanded={expandedNode} aria-label={`${expandedNode ? 'Collapse' : 'Expand'} ${label}`} onClick={() => setOpen((o) => ({ ...o, [n.key]: !expandedNode }))}>
            {expandedNode ? '▾' : '▸'}
          </button>
          <span className="tree-label">
            <span className="kind">category</span> <strong>{n.category}</strong> <span className="muted small">· {plural(n.children.length, 'tag')}</span>
          </span>
        </div>
        {expandedNode && <ul className="tree-children">{n.children.map((x) => renderNode(x, level + 1))}</ul>}
      </li>
    );
  };

  const renderNode = (n: TreeNode, level: number): ReactNode => {
    if (n.vm) return renderVm(n, level);
    if (n.category !== undefined) return renderCategory(n, level);
    const c = n.container!;
    const sel = selectedContainer(c.moref);
    const above = sel ? undefined : selectedAncestor(c);
    const count = counts.get(c.moref) ?? 0;
    const expandedNode = isOpen(n);
    const id = `src-${c.moref}`;
    const label = `${KIND_LABEL[c.kind]} ${c.name}`;
    return (
      <li key={n.key} className={`tree-node container${sel ? ' selected' : ''}`} data-testid="pick-container" style={{ ['--level' as string]: level }}>
        <div className="tree-row">
          {n.children.length > 0 ? (
            <button type="button" className="twisty" aria-expanded={expandedNode} aria-label={`${expandedNode ? 'Collapse' : 'Expand'} ${label}`} onClick={() => setOpen((o) => ({ ...o, [n.key]: !expandedNode }))}>
              {expandedNode ? '▾' : '▸'}
            </button>
          ) : (
            <span className="twisty" aria-hidden="true" />
          )}
          <input id={id} type="checkbox" aria-label={`Select ${label}`} checked={Boolean(sel) || Boolean(above)} disabled={Boolean(above)} onChange={() => toggleContainer(c)} aria-describedby={`${id}-note`} />
          <label htmlFor={id} className="tree-label">
            <span className="kind">{KIND_LABEL[c.kind]}</span> <strong>{c.name}</strong> <span className="muted small">· {plural(count, 'VM')}</span>
          </label>
        </div>
        <p id={`${id}-note`} className={sel ? 'tree-note small' : 'sr-only'} data-testid={sel ? 'container-note' : undefined}>
          {sel
            ? c.kind === 'tag'
              ? `${plural(count, 'VM')} tagged now${sel.exclude?.length ? `, ${sel.exclude.length} excluded` : ''}. VMs tagged later (or on a tagged host, cluster or folder) are backed up by the next run; VMs untagged are not.`
              : `${plural(count, 'VM')} in it now${sel.exclude?.length ? `, ${sel.exclude.length} excluded` : ''}. VMs added to it later are backed up by the next run; VMs removed from it are not.`
            : above
              ? `Included with ${above.kind} ${above.name}.`
              : c.kind === 'tag'
                ? `${plural(count, 'VM')} tagged now; choosing it includes VMs tagged later.`
                : `${plural(count, 'VM')} now; choosing it includes VMs added to it later.`}
        </p>
        {n.children.length > 0 && expandedNode && <ul className="tree-children">{n.children.map((x) => renderNode(x, level + 1))}</ul>}
      </li>
    );
  };

  return (
    <div className="step-body">
      <div className="toolbar">
        {vcenters.length > 1 ? (
          <label className="inline">
            vCenter
            <select
              value={state.vcenterId}
              onChange={(e) => {
                set({ vcenterId: e.target.value, sources: [] });
              }}
            >
              {vcenters.map((v) => (
                <option key={v.id} value={v.id}>
                  {v.name}
                </option>
              ))}
            </select>
          </label>
        ) : (
          <span className="muted">vCenter: {vcenters[0]?.name}</span>
        )}
        <label className="inline grow">
          Search VMs and containers
          <input type="search" value={query} onChange={(e) => setQuery(e.target.value)} onKeyDown={(e) => e.key === 'Enter' && e.preventDefault()} placeholder="name, guest OS, host, folder" />
        </label>
        <span className="muted small" role="status">
          <span data-testid="selected-count">{state.sources.length} selected</span>
          {inventory.data && containerSources.length > 0 && <span data-testid="vm-count"> · {plural(expanded, 'VM')} now</span>}
        </span>
      </div>
      <fieldset className="view-choice">
        <legend className="sr-only">Inventory view</legend>
        <label className="inline">
          <input type="radio" name="inventory-view" checked={view === 'hosts'} onChange={() => setView('hosts')} /> Hosts and clusters
        </label>
        <label className="inline">
          <input type="radio" name="inventory-view" checked={view === 'folders'} onChange={() => setView('folders')} /> VMs and folders
        </label>
        <label className="inline">
          <input type="radio" name="inventory-view" checked={view === 'tags'} onChange={() => setView('tags')} /> Tags
        </label>
      </fieldset>
      {inventory.isPending && <p className="muted">Reading the inventory…</p>}
      {inventory.isError && (
        <div className="alert error" role="alert">
          {inventory.error.message}
        </div>
      )}
      {missing.length > 0 && (
        <div className="alert warn">
          Not in the inventory any more (kept until you remove them):{' '}
          {missing.map((s) => (
            <button key={s.moref} type="button" className="chip" onClick={() => set({ sources: state.sources.filter((x) => x !== s) })} aria-label={`Remove ${s.name}`}>
              {isContainerSource(s) ? `${s.kind} ${s.path}` : s.name} ×
            </button>
          ))}
        </div>
      )}
      {inventory.data && (
        <>
          <p className="muted small">Choose VMs, or a datacenter, cluster, host, folder or vSphere tag: its VMs are read again at every run, so VMs added to it (or tagged) later are backed up too.</p>
          {view === 'tags' && inv.tagsError && (
            <div className="alert warn" role="alert" data-testid="tags-error">
              The tags of this vCenter could not be read: {inv.tagsError}
            </div>
          )}
          <ul className="inventory-tree" aria-label={view === 'hosts' ? 'Inventory: hosts and clusters' : view === 'folders' ? 'Inventory: VMs and folders' : 'Inventory: tags'} data-testid="inventory-tree">
            {shown.map((n) => renderNode(n, 0))}
          </ul>
          {shownVms(shown) === 0 && shown.length === 0 && (
            <p className="muted">
              {q ? `Nothing matches “${query}”.` : view === 'tags' ? (inv.tagsError ? '' : 'This vCenter has no tags.') : inv.vms.length === 0 && inv.containers.length === 0 ? 'This vCenter has no VMs.' : ''}
            </p>
          )}
        </>
      )}
    </div>
  );
}
