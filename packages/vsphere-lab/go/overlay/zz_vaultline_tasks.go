// Vaultline lab extension: long VM tasks run in the background, as on vSphere.
//
// The simulator runs every task inside the SOAP call, so a client first sees
// it finished. vCenter answers CreateSnapshot_Task, RemoveSnapshot_Task and
// RemoveAllSnapshots_Task with the Task at once; the task is `running` with
// info.progress rising while the host works, then `success` (result) or
// `error` (fault). Here:
//   - CreateSnapshot_Task: quiesce check; then each disk's current file is
//     flushed to storage (sync_file_range over its data extents, chunk by
//     chunk, without holding the VM, whose guest keeps writing) = 0-50 %;
//     then, holding the VM (a stun), the files are frozen and copied to the
//     new links (bytes copied) = 50-99 %, and the snapshot appears.
//   - RemoveSnapshot_Task / RemoveAllSnapshots_Task: holding the VM the tree
//     changes and the chain is consolidated; then the merged delta's data
//     (the areas written to the link merged away) is read and made durable
//     in the parent, chunk by chunk (bytes merged / bytes to merge) = 1-99 %.
// While one of these runs, another of them or a ReconfigVM_Task on the same
// VM gets a task that fails with TaskInProgress (naming the running task),
// as hostd reports a busy VM.
//
// The SOAP methods are reached under new names: LabWrapSDK renames the
// request element (CreateSnapshot_Task -> VaultlineCreateSnapshot_Task), the
// name is registered with the request type of the original method, so the
// simulator decodes, authenticates and locks as for any call and dispatches
// to the methods below; the response element keeps the original name.

package simulator

import (
	"fmt"
	"io"
	"log"
	"os"
	"reflect"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const labAsyncPrefix = "Vaultline"

func init() {
	for name, req := range map[string]interface{}{
		"CreateSnapshot_Task":     types.CreateSnapshot_Task{},
		"RemoveSnapshot_Task":     types.RemoveSnapshot_Task{},
		"RemoveAllSnapshots_Task": types.RemoveAllSnapshots_Task{},
		"ReconfigVM_Task":         types.ReconfigVM_Task{},
	} {
		types.Add(labAsyncPrefix+name, reflect.TypeOf(req))
	}
}

// labAsyncRe finds the method element of a request to run as a lab task (or, for the NAS
// datastore, RegisterVM and RelocateVM methods, by the lab's version: zz_vaultline_nas.go).
var labAsyncRe = regexp.MustCompile(`(<\/?(?:[A-Za-z_][\w.-]*:)?)(CreateSnapshot_Task|RemoveSnapshot_Task|RemoveAllSnapshots_Task|ReconfigVM_Task|CreateNasDatastore|RemoveDatastore|RegisterVM_Task|RelocateVM_Task)([\s/>])`)

// labRenameAsync renames the method element of such a request (the body of a POST /sdk).
func labRenameAsync(body []byte) []byte {
	return labAsyncRe.ReplaceAll(body, []byte("${1}"+labAsyncPrefix+"${2}${3}"))
}

var (
	labTaskMu sync.Mutex
	labBusy   = map[types.ManagedObjectReference]types.ManagedObjectReference{} // VM -> its running snapshot task
	labMerges = map[types.ManagedObjectReference]*[]labMergeJob{}               // VM -> merged areas to make durable
)

// labMergeJob is a consolidated file (open, as later merges may rename it) and the areas merged into it.
type labMergeJob struct {
	f     *os.File
	areas []labExtent
}

// labNoteMerge records a merge for the task removing snapshots of vm (if one is).
func labNoteMerge(vm *VirtualMachine, file string, written []labExtent) {
	labTaskMu.Lock()
	defer labTaskMu.Unlock()
	jobs := labMerges[vm.Self]
	if jobs == nil || len(written) == 0 {
		return
	}
	f, err := os.Open(file)
	if err != nil {
		return
	}
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	*jobs = append(*jobs, labMergeJob{f: f, areas: labAlign(written, 4096, 0, size)})
}

// labTask is a running lab task and its progress.
type labTask struct {
	task   *Task
	last   int32
	lo, hi int32
	total  int64
	done   int64
}

func (t *labTask) set(p int32) {
	if p <= t.last {
		return // progress only rises
	}
	t.last = p
	Map.WithLock(t.task, func() {
		Map.Update(t.task, []types.PropertyChange{{Name: "info.progress", Val: p}})
	})
}

// phase makes the next `total` bytes of work move progress from lo to hi.
func (t *labTask) phase(lo, hi int32, total int64) {
	t.lo, t.hi, t.total, t.done = lo, hi, total, 0
	t.set(lo)
}

// add reports n more bytes of work done.
func (t *labTask) add(n int64) {
	t.done += n
	if t.total <= 0 {
		return
	}
	done := t.done
	if done > t.total {
		done = t.total
	}
	t.set(t.lo + int32(int64(t.hi-t.lo)*done/t.total))
}

// labStartTask answers a task method: the Task, running, whose work runs in the
// background; or, when the VM is busy with another lab task, one that failed
// with TaskInProgress. The caller holds the lock of obj.
func labStartTask(vm types.ManagedObjectReference, obj mo.Reference, name string, work func(*labTask) (types.AnyType, types.BaseMethodFault)) types.ManagedObjectReference {
	labTaskMu.Lock()
	busy, isBusy := labBusy[vm]
	if isBusy {
		labTaskMu.Unlock()
		return labBusyTask(obj, name, busy)
	}
	task := CreateTask(obj, name, nil)
	labBusy[vm] = task.Self
	labTaskMu.Unlock()

	Map.WithLock(task, func() {
		Map.Update(task, []types.PropertyChange{
			{Name: "info.startTime", Val: time.Now()},
			{Name: "info.state", Val: types.TaskInfoStateRunning},
			{Name: "info.progress", Val: int32(0)},
		})
	})
	go func() {
		t := &labTask{task: task}
		res, fault := work(t)
		labTaskMu.Lock()
		delete(labBusy, vm)
		labTaskMu.Unlock()
		labFinishTask(task, res, fault)
	}()
	return task.Self
}

// labBusyTask is a task that failed at once with TaskInProgress (the running task named).
func labBusyTask(obj mo.Reference, name string, running types.ManagedObjectReference) types.ManagedObjectReference {
	task := CreateTask(obj, name, func(*Task) (types.AnyType, types.BaseMethodFault) {
		return nil, &types.TaskInProgress{Task: running}
	})
	return task.Run()
}

func labFinishTask(task *Task, res types.AnyType, fault types.BaseMethodFault) {
	changes := []types.PropertyChange{{Name: "info.completeTime", Val: time.Now()}}
	if fault != nil {
		changes = append(changes,
			types.PropertyChange{Name: "info.state", Val: types.TaskInfoStateError},
			types.PropertyChange{Name: "info.error", Val: types.LocalizedMethodFault{Fault: fault, LocalizedMessage: fmt.Sprintf("%T", fault)}},
		)
	} else {
		changes = append(changes,
			types.PropertyChange{Name: "info.progress", Val: int32(100)},
			types.PropertyChange{Name: "info.state", Val: types.TaskInfoStateSuccess},
			types.PropertyChange{Name: "info.result", Val: res},
		)
	}
	Map.WithLock(task, func() { Map.Update(task, changes) })
}

// labLockedVM runs f holding the VM's lock, unless the VM is gone (then false).
func labLockedVM(ref types.ManagedObjectReference, f func(vm *VirtualMachine)) bool {
	vm, ok := Map.Get(ref).(*VirtualMachine)
	if !ok {
		return false
	}
	Map.WithLock(vm, func() {
		if Map.Get(ref) == nil {
			ok = false
			return
		}
		f(vm)
	})
	return ok
}

// labFlushAreas makes the given areas of an open file durable, chunk by chunk, reading
// them first when read is set (as a merge reads the delta), reporting bytes to t.
func labFlushAreas(f *os.File, areas []labExtent, read bool, t *labTask) error {
	const chunk = 8 << 20
	const flags = 1 | 2 | 4 // SYNC_FILE_RANGE_WAIT_BEFORE | _WRITE | _WAIT_AFTER
	var buf []byte
	if read {
		buf = make([]byte, chunk)
	}
	for _, a := range areas {
		for done := int64(0); done < a.len; {
			n := a.len - done
			if n > chunk {
				n = chunk
			}
			if read {
				if _, err := f.ReadAt(buf[:n], a.off+done); err != nil && err != io.EOF {
					return err
				}
			}
			if err := syscall.SyncFileRange(int(f.Fd()), a.off+done, n, flags); err != nil {
				return err
			}
			done += n
			t.add(n)
		}
	}
	return f.Sync()
}

func labSum(areas []labExtent) int64 {
	var n int64
	for _, a := range areas {
		n += a.len
	}
	return n
}

// VaultlineCreateSnapshotTask is CreateSnapshot_Task, run in the background.
func (vm *VirtualMachine) VaultlineCreateSnapshotTask(ctx *Context, req *types.CreateSnapshot_Task) soap.HasFault {
	ref := vm.Self
	task := labStartTask(ref, vm, "createSnapshot", func(t *labTask) (types.AnyType, types.BaseMethodFault) {
		if req.Quiesce {
			if _, marked := labQuiesceFail.Load(ref.Value); marked {
				return nil, &types.ApplicationQuiesceFault{}
			}
		}
		// 1. Flush each disk's current file (the VM keeps running).
		type flush struct {
			file  string
			areas []labExtent
		}
		var flushes []flush
		var total int64
		if !labLockedVM(ref, func(vm *VirtualMachine) {
			for _, d := range labDisks(vm.Config.Hardware.Device) {
				desc, err := labLocalPath(labBacking(d).FileName)
				if err != nil {
					continue
				}
				areas, err := labAllocated(labFlat(desc), getDiskSize(d))
				if err != nil {
					continue
				}
				flushes = append(flushes, flush{labFlat(desc), areas})
				total += labSum(areas)
			}
		}) {
			return nil, &types.ManagedObjectNotFound{Obj: ref}
		}
		t.phase(0, 50, total)
		for _, fl := range flushes {
			f, err := os.Open(fl.file)
			if err != nil {
				continue // gone since: the stun below handles the disk as the synchronous task did
			}
			err = labFlushAreas(f, fl.areas, false, t)
			_ = f.Close()
			if err != nil {
				return nil, labFaultOf(labFileErrorOf(fl.file, err))
			}
		}
		// 2. Stun: freeze the files, copy them to the new links, make the snapshot.
		var res types.AnyType
		var fault types.BaseMethodFault
		if !labLockedVM(ref, func(vm *VirtualMachine) {
			var copyTotal int64
			for _, d := range labDisks(vm.Config.Hardware.Device) {
				if desc, err := labLocalPath(labBacking(d).FileName); err == nil {
					if areas, err := labAllocated(labFlat(desc), getDiskSize(d)); err == nil {
						copyTotal += labSum(areas)
					}
				}
			}
			t.phase(50, 99, copyTotal)
			frozen, err := labPrepareFreeze(vm, t.add)
			if err != nil {
				fault = labFaultOf(err)
				return
			}
			labTaskMu.Lock()
			labPrepared[vm.Self] = frozen
			labTaskMu.Unlock()
			res = labCreateSnapshot(vm, req)
			labTaskMu.Lock()
			delete(labPrepared, vm.Self)
			labTaskMu.Unlock()
		}) {
			return nil, &types.ManagedObjectNotFound{Obj: ref}
		}
		return res, fault
	})
	return &methods.CreateSnapshot_TaskBody{Res: &types.CreateSnapshot_TaskResponse{Returnval: task}}
}

// labCreateSnapshot is the simulator's CreateSnapshot_Task work (the VM lock is held).
func labCreateSnapshot(vm *VirtualMachine, req *types.CreateSnapshot_Task) types.ManagedObjectReference {
	var changes []types.PropertyChange
	if vm.Snapshot == nil {
		vm.Snapshot = &types.VirtualMachineSnapshotInfo{}
	}
	snapshot := &VirtualMachineSnapshot{}
	snapshot.Vm = vm.Reference()
	snapshot.Config = *vm.Config
	Map.Put(snapshot) // the lab's hook gives it the frozen disks and moves the VM to the links
	treeItem := types.VirtualMachineSnapshotTree{
		Snapshot:        snapshot.Self,
		Vm:              snapshot.Vm,
		Name:            req.Name,
		Description:     req.Description,
		Id:              atomic.AddInt32(&vm.sid, 1),
		CreateTime:      time.Now(),
		State:           vm.Runtime.PowerState,
		Quiesced:        req.Quiesce,
		BackupManifest:  "",
		ReplaySupported: types.NewBool(false),
	}
	cur := vm.Snapshot.CurrentSnapshot
	if cur != nil {
		parent := Map.Get(*cur).(*VirtualMachineSnapshot)
		parent.ChildSnapshot = append(parent.ChildSnapshot, snapshot.Self)
		ss := findSnapshotInTree(vm.Snapshot.RootSnapshotList, *cur)
		ss.ChildSnapshotList = append(ss.ChildSnapshotList, treeItem)
	} else {
		changes = append(changes, types.PropertyChange{
			Name: "snapshot.rootSnapshotList",
			Val:  append(vm.Snapshot.RootSnapshotList, treeItem),
		})
	}
	snapshot.createSnapshotFiles()
	changes = append(changes, types.PropertyChange{Name: "snapshot.currentSnapshot", Val: snapshot.Self})
	Map.Update(vm, changes)
	return snapshot.Self
}

// labRemoveWork removes snapshots holding the VM (remove does the simulator's part;
// the lab's hook consolidates), then makes the merged areas durable with progress.
func labRemoveWork(ref types.ManagedObjectReference, t *labTask, remove func(vm *VirtualMachine)) types.BaseMethodFault {
	var jobs []labMergeJob
	labTaskMu.Lock()
	labMerges[ref] = &jobs
	labTaskMu.Unlock()
	// The merge of the deltas into their parents takes a while: like vCenter, the task shows it has started.
	t.set(1)
	ok := labLockedVM(ref, remove)
	labTaskMu.Lock()
	delete(labMerges, ref)
	labTaskMu.Unlock()
	defer func() {
		for _, j := range jobs {
			_ = j.f.Close()
		}
	}()
	if !ok {
		return &types.ManagedObjectNotFound{Obj: ref}
	}
	var total int64
	for _, j := range jobs {
		total += labSum(j.areas)
	}
	t.phase(1, 99, total)
	for _, j := range jobs {
		if err := labFlushAreas(j.f, j.areas, true, t); err != nil {
			return labFaultOf(labFileErrorOf(j.f.Name(), err))
		}
	}
	return nil
}

// VaultlineRemoveSnapshotTask is RemoveSnapshot_Task, run in the background.
func (v *VirtualMachineSnapshot) VaultlineRemoveSnapshotTask(ctx *Context, req *types.RemoveSnapshot_Task) soap.HasFault {
	ref := v.Vm
	ictx := &Context{Map: Map, Context: ctx.Context, Session: ctx.Session}
	task := labStartTask(ref, v, "removeSnapshot", func(t *labTask) (types.AnyType, types.BaseMethodFault) {
		gone := false
		fault := labRemoveWork(ref, t, func(vm *VirtualMachine) {
			snap, ok := Map.Get(req.This).(*VirtualMachineSnapshot)
			if !ok || vm.Snapshot == nil {
				gone = true
				return
			}
			var changes []types.PropertyChange
			if vm.Snapshot.CurrentSnapshot != nil && *vm.Snapshot.CurrentSnapshot == req.This {
				parent := findParentSnapshotInTree(vm.Snapshot.RootSnapshotList, req.This)
				changes = append(changes, types.PropertyChange{Name: "snapshot.currentSnapshot", Val: parent})
			}
			rootSnapshots := removeSnapshotInTree(vm.Snapshot.RootSnapshotList, req.This, req.RemoveChildren)
			changes = append(changes, types.PropertyChange{Name: "snapshot.rootSnapshotList", Val: rootSnapshots})
			if len(rootSnapshots) == 0 {
				changes = []types.PropertyChange{{Name: "snapshot", Val: nil}}
			}
			snap.removeSnapshotFiles(ictx)
			Map.Update(vm, changes)
			Map.Remove(req.This)
		})
		if gone {
			return nil, &types.ManagedObjectNotFound{Obj: req.This}
		}
		return nil, fault
	})
	return &methods.RemoveSnapshot_TaskBody{Res: &types.RemoveSnapshot_TaskResponse{Returnval: task}}
}

// VaultlineRemoveAllSnapshotsTask is RemoveAllSnapshots_Task, run in the background.
func (vm *VirtualMachine) VaultlineRemoveAllSnapshotsTask(ctx *Context, req *types.RemoveAllSnapshots_Task) soap.HasFault {
	ref := vm.Self
	ictx := &Context{Map: Map, Context: ctx.Context, Session: ctx.Session}
	task := labStartTask(ref, vm, "RemoveAllSnapshots", func(t *labTask) (types.AnyType, types.BaseMethodFault) {
		return nil, labRemoveWork(ref, t, func(vm *VirtualMachine) {
			if vm.Snapshot == nil {
				return
			}
			refs := allSnapshotsInTree(vm.Snapshot.RootSnapshotList)
			Map.Update(vm, []types.PropertyChange{{Name: "snapshot", Val: nil}})
			for _, r := range refs {
				if s, ok := Map.Get(r).(*VirtualMachineSnapshot); ok {
					s.removeSnapshotFiles(ictx)
				}
				Map.Remove(r)
			}
		})
	})
	return &methods.RemoveAllSnapshots_TaskBody{Res: &types.RemoveAllSnapshots_TaskResponse{Returnval: task}}
}

// VaultlineReconfigVMTask is ReconfigVM_Task, refused with TaskInProgress while a snapshot task runs on the VM.
func (vm *VirtualMachine) VaultlineReconfigVMTask(ctx *Context, req *types.ReconfigVM_Task) soap.HasFault {
	labTaskMu.Lock()
	running, busy := labBusy[vm.Self]
	labTaskMu.Unlock()
	if busy {
		return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{Returnval: labBusyTask(vm, "reconfigVm", running)}}
	}
	if ds, file := labUnmountedDisk(vm, &req.Spec); ds != nil {
		task := CreateTask(vm, "reconfigVm", func(*Task) (types.AnyType, types.BaseMethodFault) {
			log.Printf("lab: reconfigure %s: %s is on %s, which its host does not mount", vm.Name, file, ds.Name)
			return nil, &types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name}
		})
		return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{Returnval: task.Run()}}
	}
	return vm.ReconfigVMTask(ctx, req)
}
