// Vaultline lab extension: snapshots that freeze disk data.
//
// Stock vcsim creates no delta disk, so a guest write after a snapshot would
// change "the snapshot's" disk. Here, when a snapshot is created:
//   - the snapshot gets private copies of the disk devices, pointing at the
//     current files, which become frozen (fsync + syncfs);
//   - each VM disk moves to a new "<base>-00000N.vmdk"/"-flat.vmdk", a sparse
//     full copy of the frozen file, with backing.parent = the frozen backing;
//   - with CBT on, the snapshot's disks and the VM's disks get a changeId.
// Each file in a chain is therefore a complete disk image (not a real
// redo log), which keeps reads and SHA-256 ground truth trivial.
//
// When snapshots are removed, every chain file no longer referenced by the
// VM or a remaining snapshot is consolidated: its child's data is renamed
// over it (the older name survives, as on ESXi where the base keeps its name),
// references are rewritten and the child's descriptor is deleted. With the last
// snapshot gone the VM is back on its base disk, holding the newest data.
// RevertToSnapshot does not touch disks (linear chains only).

package simulator

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path"
	"syscall"

	"github.com/vmware/govmomi/vim25/types"
)

// labSparseCopy copies only the data extents of src into a new sparse dst,
// reporting each chunk copied to progress (may be nil).
func labSparseCopy(src, dst string, size int64, progress func(int64)) error {
	extents, err := labAllocated(src, size)
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0600)
	if err != nil {
		return labDstError{err}
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		return labDstError{err}
	}
	buf := make([]byte, 1<<20)
	for _, e := range extents {
		for done := int64(0); done < e.len; {
			n := int64(len(buf))
			if rest := e.len - done; rest < n {
				n = rest
			}
			got, err := in.ReadAt(buf[:n], e.off+done)
			if got == 0 && err != nil {
				if err == io.EOF {
					break
				}
				return err
			}
			if _, err := out.WriteAt(buf[:got], e.off+done); err != nil {
				return labDstError{err}
			}
			done += int64(got)
			if progress != nil {
				progress(int64(got))
			}
		}
	}
	return nil // page cache is coherent for file readers; only the frozen file is flushed
}

// labNextDelta picks "[ds] dir/base-00000N.vmdk" not yet on disk.
func labNextDelta(fileName string) (string, string, error) {
	m := labDeltaRe.FindStringSubmatch(fileName)
	if m == nil {
		return "", "", fmt.Errorf("not a vmdk: %s", fileName)
	}
	for n := 1; n < 1000000; n++ {
		name := fmt.Sprintf("%s-%06d.vmdk", m[1], n)
		local, err := labLocalPath(name)
		if err != nil {
			return "", "", err
		}
		if _, err := os.Stat(local); os.IsNotExist(err) {
			if _, err := os.Stat(labFlat(local)); os.IsNotExist(err) {
				return name, local, nil
			}
		}
	}
	return "", "", fmt.Errorf("no free delta name for %s", fileName)
}

// labFrozen is what freezing a VM's disks produced: the snapshot's devices
// (the frozen files) and the VM's new devices (on fresh links).
type labFrozen struct {
	snapDevices, vmDevices []types.BaseVirtualDevice
}

// labPrepared holds, per VM, disks frozen by a snapshot task just before it
// creates the snapshot object (whose registry hook then uses them); labTaskMu guards it.
var labPrepared = map[types.ManagedObjectReference]*labFrozen{}

// labPrepareFreeze freezes every flat disk of the VM (the VM lock is held):
// each current file becomes the snapshot's and the VM moves to a new link,
// a sparse copy of it (progress gets the bytes copied). On an error the links
// made so far are deleted and nothing changes.
func labPrepareFreeze(vm *VirtualMachine, progress func(int64)) (*labFrozen, error) {
	cbt := labCBTEnabled(vm)
	out := &labFrozen{}
	var made []string
	for _, d := range vm.Config.Hardware.Device {
		disk, ok := d.(*types.VirtualDisk)
		if ok {
			_, ok = disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		}
		if !ok {
			out.snapDevices = append(out.snapDevices, d)
			out.vmDevices = append(out.vmDevices, d)
			continue
		}
		frozen := labCopyDisk(disk)
		cur := labCopyDisk(disk)
		fb, cb := labBacking(frozen), labBacking(cur)
		deltaDesc, err := labFreeze(disk, fb, cb, cbt, progress)
		if deltaDesc != "" {
			made = append(made, deltaDesc)
		}
		if _, linkFailed := err.(*labDiskError); linkFailed {
			// the new link could not be written (a full datastore, say): the task fails
			for _, desc := range made {
				labRemoveLink(desc)
			}
			return nil, err
		}
		if err != nil {
			// the disk's own file is unreadable (gone behind vCenter's back, say): as before,
			// the snapshot is taken and this disk stays where it is (its readers will fail)
			log.Printf("lab: snapshot of %s: %s", vm.Name, err)
			if deltaDesc != "" {
				labRemoveLink(deltaDesc)
				made = made[:len(made)-1]
			}
			out.snapDevices = append(out.snapDevices, frozen)
			out.vmDevices = append(out.vmDevices, d)
			continue
		}
		out.snapDevices = append(out.snapDevices, frozen)
		out.vmDevices = append(out.vmDevices, cur)
	}
	return out, nil
}

// labRemoveLink deletes a link's files (descriptor, complete image, delta, write list).
func labRemoveLink(desc string) {
	labRemoveLinkFiles(desc)
	_ = os.Remove(labFlat(desc))
	_ = os.Remove(desc)
}

// labDstError is a failure to write the copy (not to read its source).
type labDstError struct{ err error }

func (e labDstError) Error() string { return e.err.Error() }

// labDiskError is a failed file operation on a datastore file ("[ds] path").
type labDiskError struct {
	file string
	err  error
}

func (e *labDiskError) Error() string { return fmt.Sprintf("%s: %s", e.file, e.err) }

func labFileErrorOf(file string, err error) error { return &labDiskError{file, err} }

// labFaultOf is the fault ESXi reports for err: NoDiskSpace when a datastore is
// full, a FileFault naming the file for other file errors, else SystemError.
func labFaultOf(err error) types.BaseMethodFault {
	de, ok := err.(*labDiskError)
	if !ok {
		return &types.SystemError{Reason: err.Error()}
	}
	if errors.Is(de.err, syscall.ENOSPC) {
		ds := ""
		if p, f := parseDatastorePath(de.file); f == nil {
			ds = p.Datastore
		}
		return &types.NoDiskSpace{FileFault: types.FileFault{File: de.file}, Datastore: ds}
	}
	return &types.FileFault{File: de.file}
}

func labOnSnapshotCreated(snap *VirtualMachineSnapshot) {
	vm, ok := Map.Get(snap.Vm).(*VirtualMachine)
	if !ok {
		return
	}
	labTaskMu.Lock()
	frozen := labPrepared[vm.Self]
	delete(labPrepared, vm.Self)
	labTaskMu.Unlock()
	if frozen == nil {
		// a snapshot made without the lab's task (in-process callers): freeze now
		var err error
		if frozen, err = labPrepareFreeze(vm, nil); err != nil {
			log.Printf("lab: snapshot %s of %s: %s", snap.Self.Value, vm.Name, err)
			frozen = &labFrozen{snapDevices: vm.Config.Hardware.Device, vmDevices: vm.Config.Hardware.Device}
		}
	}
	snap.Config.Hardware.Device = frozen.snapDevices
	Map.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: frozen.vmDevices}})
	vm.updateDiskLayouts()
}

// labFreeze freezes the file of fb and moves cb to a fresh delta copy of it.
// It returns the new link's descriptor once it has started making it.
func labFreeze(disk *types.VirtualDisk, fb, cb *types.VirtualDiskFlatVer2BackingInfo, cbt bool, progress func(int64)) (string, error) {
	desc, err := labLocalPath(fb.FileName)
	if err != nil {
		return "", err
	}
	flat := labFlat(desc)
	capacity := getDiskSize(disk)
	// Freeze: flush the file; on a SAN datastore also the whole filesystem, so
	// a reader of the LUN (the filesystem image) sees the frozen data.
	labSyncFS(flat, labOnSAN(fb.FileName))
	deltaName, deltaDesc, err := labNextDelta(fb.FileName)
	if err != nil {
		return "", err
	}
	if err := labSparseCopy(flat, labFlat(deltaDesc), capacity, progress); err != nil {
		if dst, ok := err.(labDstError); ok {
			return deltaDesc, labFileErrorOf(deltaName, dst.err)
		}
		return deltaDesc, err
	}
	_ = os.Remove(labWritesFile(deltaDesc)) // a new link starts with nothing written
	labWriteDescriptor(deltaDesc, capacity, fb.Uuid, path.Base(fb.FileName), labThin(fb))
	if cbt {
		labMu.Lock()
		c, err := labLoadCtk(fb, true)
		if err == nil {
			fb.ChangeId = c.changeID()
		}
		labMu.Unlock()
		if err != nil {
			return deltaDesc, err
		}
	}
	cb.FileName = deltaName
	cb.Parent = labCopyBacking(fb)
	cb.ChangeId = fb.ChangeId
	return deltaDesc, nil
}

// labSnapshots lists the snapshots still in the VM's tree.
func labSnapshots(vm *VirtualMachine) []*VirtualMachineSnapshot {
	var out []*VirtualMachineSnapshot
	if vm.Snapshot == nil {
		return out
	}
	for _, ref := range allSnapshotsInTree(vm.Snapshot.RootSnapshotList) {
		if s, ok := Map.Get(ref).(*VirtualMachineSnapshot); ok {
			out = append(out, s)
		}
	}
	return out
}

func labConsolidate(vm *VirtualMachine) {
	snaps := labSnapshots(vm)
	changed := false
	var vmDevices []types.BaseVirtualDevice
	snapDevices := map[*VirtualMachineSnapshot][]types.BaseVirtualDevice{}
	for _, s := range snaps {
		snapDevices[s] = s.Config.Hardware.Device
	}

	for _, d := range vm.Config.Hardware.Device {
		disk, ok := d.(*types.VirtualDisk)
		if ok {
			_, ok = disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		}
		if !ok {
			vmDevices = append(vmDevices, d)
			continue
		}
		// The chain, newest first, and the backing object we know for each name.
		var names []string
		known := map[string]*types.VirtualDiskFlatVer2BackingInfo{}
		for b := labBacking(disk); b != nil; b = b.Parent {
			names = append(names, b.FileName)
			known[b.FileName] = b
		}
		needed := map[string]bool{names[0]: true}
		for _, s := range snaps {
			for _, sd := range labDisks(s.Config.Hardware.Device) {
				if sd.Key == disk.Key {
					needed[labBacking(sd).FileName] = true
				}
			}
		}
		renamed := map[string]string{}
		for i := 1; i < len(names); {
			if needed[names[i]] {
				i++
				continue
			}
			child, parent := names[i-1], names[i]
			if err := labMerge(vm, child, parent); err != nil {
				log.Printf("lab: consolidate %s into %s: %s", child, parent, err)
				i++
				continue
			}
			if needed[child] {
				needed[parent] = true
			}
			renamed[child] = parent
			for k, v := range renamed {
				if v == child {
					renamed[k] = parent
				}
			}
			known[parent] = &types.VirtualDiskFlatVer2BackingInfo{}
			*known[parent] = *known[child]
			known[parent].FileName = parent
			names = append(names[:i-1], names[i:]...)
		}
		if len(renamed) == 0 {
			vmDevices = append(vmDevices, d)
			continue
		}
		changed = true
		// chainFrom(j) builds the backing chain for names[j:].
		var chainFrom func(j int) *types.VirtualDiskFlatVer2BackingInfo
		chainFrom = func(j int) *types.VirtualDiskFlatVer2BackingInfo {
			if j >= len(names) {
				return nil
			}
			c := *known[names[j]]
			c.Parent = chainFrom(j + 1)
			return &c
		}
		index := func(name string) int {
			if r, ok := renamed[name]; ok {
				name = r
			}
			for j, n := range names {
				if n == name {
					return j
				}
			}
			return -1
		}
		for j := range names {
			if d, err := labLocalPath(names[j]); err == nil {
				parent := ""
				if j+1 < len(names) {
					parent = path.Base(names[j+1])
				}
				labWriteDescriptor(d, getDiskSize(disk), known[names[j]].Uuid, parent, labThin(known[names[j]]))
			}
		}
		nd := labCopyDisk(disk)
		nb := chainFrom(0)
		nb.ChangeId = labBacking(disk).ChangeId
		nd.Backing = nb
		vmDevices = append(vmDevices, nd)
		for _, s := range snaps {
			devs := snapDevices[s]
			out := make([]types.BaseVirtualDevice, len(devs))
			copy(out, devs)
			for k, sd := range out {
				sdisk, ok := sd.(*types.VirtualDisk)
				if !ok || sdisk.Key != disk.Key {
					continue
				}
				if _, ok := sdisk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); !ok {
					continue
				}
				j := index(labBacking(sdisk).FileName)
				if j < 0 {
					continue
				}
				c := labCopyDisk(sdisk)
				b := chainFrom(j)
				b.ChangeId = labBacking(sdisk).ChangeId
				c.Backing = b
				out[k] = c
			}
			snapDevices[s] = out
		}
	}
	if !changed {
		return
	}
	for _, s := range snaps {
		s.Config.Hardware.Device = snapDevices[s]
	}
	Map.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: vmDevices}})
	vm.updateDiskLayouts()
}

// labMerge moves the child's (newer, complete) data over the parent's name
// and deletes the child's files.
// A snapshot task removing snapshots then makes the merged areas durable
// (labPendingMerge), with progress, after it has released the VM.
func labMerge(vm *VirtualMachine, child, parent string) error {
	cd, err := labLocalPath(child)
	if err != nil {
		return err
	}
	pd, err := labLocalPath(parent)
	if err != nil {
		return err
	}
	written, _ := labLinkWrites(cd)
	if err := os.Rename(labFlat(cd), labFlat(pd)); err != nil {
		return err
	}
	labNoteMerge(vm, labFlat(pd), written)
	// What was written to the child is now the parent's (its delta is rebuilt with its descriptor).
	if err := labMergeWrites(cd, pd); err != nil {
		log.Printf("lab: consolidate %s: %s", child, err)
	}
	labRemoveLinkFiles(cd)
	_ = os.Remove(cd)
	log.Printf("lab: consolidated %s into %s", child, parent)
	return nil
}
