// Vaultline lab extension: NFS datastores, RegisterVM from a .vmx, Storage vMotion.
//
// Instant recovery exports a restore point over NFSv3, mounts it on a host with
// HostDatastoreSystem.CreateNasDatastore, registers the VM from its .vmx and
// moves it to production storage with RelocateVM_Task while it runs. The
// simulator keeps none of that faithful: its CreateNasDatastore takes
// localPath as a folder of the server's own filesystem, RegisterVM_Task
// makes a VM without the .vmx's disks, RemoveDatastore is missing and
// RelocateVM_Task moves no file. Here:
//   - "NFS exports" are a lab mapping remoteHost:remotePath -> a local folder
//     (POST /lab/nas-export; for 127.0.0.1/localhost the remote path itself is
//     the folder), or else a real NFSv3 server that the lab mounts as ESXi
//     would (zz_vaultline_nfsclient.go, FUSE-mounted by zz_vaultline_nfsfuse.go).
//     CreateNasDatastore mounts one as a datastore of type NFS whose files ARE
//     that folder or mount (readOnly: a read-only bind mount of the folder, a
//     read-only FUSE mount, so every write through the lab fails with EROFS).
//     Server unreachable -> PlatformConfigFault "Unable to connect", export
//     unknown or the client refused -> "denied".
//     The same export under the same name on another host is the same
//     datastore mounted there too; another datastore of that name ->
//     DuplicateName.
//   - RemoveDatastore unmounts it from the host (ResourceInUse while a VM
//     registered on that host has files on it); the folder is left as it is,
//     and with the last host the NFS mount goes (FUSE unmount, UMNT).
//   - RegisterVM_Task reads the .vmx: displayName, memSize, numvcpus, SCSI
//     controllers and their disks (existing files, no fileOperation).
//   - RelocateVM_Task with a datastore and/or per-disk locators copies the VM's
//     files (sparse, bit-exact, chains included) to the target datastores in
//     the background with progress, rewrites the backings, files and layout,
//     then deletes the source files. A full target fails first with
//     NoDiskSpace and leaves the source as it was.
// These methods are reached under lab names (LabWrapSDK renames the request
// element, see zz_vaultline_tasks.go).

package simulator

import (
	"crypto/sha1"
	"fmt"
	"io/ioutil"
	"log"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func init() {
	for name, req := range map[string]interface{}{
		"CreateNasDatastore": types.CreateNasDatastore{},
		"RemoveDatastore":    types.RemoveDatastore{},
		"RegisterVM_Task":    types.RegisterVM_Task{},
		"RelocateVM_Task":    types.RelocateVM_Task{},
	} {
		types.Add(labAsyncPrefix+name, reflect.TypeOf(req))
	}
	RegisterEndpoint(func(s *Service, r *Registry) {
		s.HandleFunc("/lab/nas-export", labServeNasExport)
		labNfsSweep()
	})
}

// labNasMount is one NFS datastore of the lab.
type labNasMount struct {
	export string        // remoteHost:remotePath
	dir    string        // the exported folder (lab exports)
	bind   string        // read-only bind mount of dir ("" = none)
	fuse   *labFuseMount // a real NFS mount (no lab export for it)
}

var labNas = struct {
	sync.Mutex
	exports map[string]string                             // "host:path" -> folder
	mounts  map[types.ManagedObjectReference]*labNasMount // datastore -> mount
}{exports: map[string]string{}, mounts: map[types.ManagedObjectReference]*labNasMount{}}

func labNasLoopback(host string) bool {
	return host == "127.0.0.1" || host == "localhost" || host == "::1"
}

const (
	labNasUnreachable = "Unable to connect to NFS server."
	labNasDenied      = "The mount request was denied by the NFS server. Check that the export exists and that the client is permitted to mount it."
)

// labNasResolve finds the folder behind remoteHost:remotePath; fault text when there is none,
// and neither when the server is no lab export (then the lab mounts it over NFS, as ESXi would).
func labNasResolve(host, p string) (string, string) {
	labNas.Lock()
	dir, ok := labNas.exports[host+":"+path.Clean(p)]
	known := false
	for k := range labNas.exports {
		if strings.HasPrefix(k, host+":") {
			known = true
		}
	}
	labNas.Unlock()
	if ok {
		return dir, ""
	}
	if labNasLoopback(host) {
		if st, err := os.Stat(p); err == nil && st.IsDir() && path.IsAbs(p) {
			return path.Clean(p), ""
		}
		known = true
	}
	if !known {
		return "", ""
	}
	return "", fmt.Sprintf("NFS mount %s:%s failed: %s", host, p, labNasDenied)
}

// labNfsFault is ESXi's text for a mount that failed: a refusal by MOUNT is "denied", anything
// before that (no route, no portmapper, no MOUNT or NFS program) "unable to connect".
func labNfsFault(host, p string, err error) string {
	why := labNasUnreachable
	if _, ok := err.(nfsMountError); ok {
		why = labNasDenied
	}
	log.Printf("lab: NFS mount %s:%s: %v", host, p, err)
	return fmt.Sprintf("NFS mount %s:%s failed: %s", host, p, why)
}

// labServeNasExport: POST /lab/nas-export?remoteHost=&remotePath=&dir= adds an export,
// DELETE (same remoteHost and remotePath) removes it, GET lists them.
func labServeNasExport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := q.Get("remoteHost") + ":" + path.Clean(q.Get("remotePath"))
	labNas.Lock()
	defer labNas.Unlock()
	switch r.Method {
	case http.MethodPost:
		dir := q.Get("dir")
		if q.Get("remoteHost") == "" || !path.IsAbs(q.Get("remotePath")) {
			labJSON(w, 400, map[string]string{"error": "remoteHost and an absolute remotePath are needed"})
			return
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			labJSON(w, 400, map[string]string{"error": fmt.Sprintf("dir %q is not a folder", dir)})
			return
		}
		labNas.exports[key] = path.Clean(dir)
	case http.MethodDelete:
		delete(labNas.exports, key)
	}
	labJSON(w, 200, labNas.exports)
}

// labNasID is the volume id ESXi shows for an NFS datastore (ds:///vmfs/volumes/<id>/).
func labNasID(export string) string {
	h := sha1.Sum([]byte(export))
	return fmt.Sprintf("%x-%x", h[0:4], h[4:8])
}

func labHostOf(dss *HostDatastoreSystem) *HostSystem {
	h, _ := Map.Get(dss.Host.Self).(*HostSystem)
	return h
}

// VaultlineCreateNasDatastore is CreateNasDatastore with a lab export behind it.
func (dss *HostDatastoreSystem) VaultlineCreateNasDatastore(ctx *Context, c *types.CreateNasDatastore) soap.HasFault {
	r := &methods.CreateNasDatastoreBody{}
	fail := func(msg string, f types.BaseMethodFault) soap.HasFault {
		r.Fault_ = Fault(msg, f)
		return r
	}
	spec := c.Spec
	switch strings.ToUpper(spec.Type) {
	case "", "NFS":
		spec.Type = "NFS"
	case "NFS41":
		spec.Type = "NFS41"
	default:
		return fail(fmt.Sprintf("unsupported NAS type %q", spec.Type), &types.InvalidArgument{InvalidProperty: "spec.type"})
	}
	switch spec.AccessMode {
	case "":
		spec.AccessMode = string(types.HostMountModeReadWrite)
	case string(types.HostMountModeReadWrite), string(types.HostMountModeReadOnly):
	default:
		return fail(fmt.Sprintf("invalid access mode %q", spec.AccessMode), &types.InvalidArgument{InvalidProperty: "spec.accessMode"})
	}
	if spec.LocalPath == "" || strings.ContainsAny(spec.LocalPath, "/[]") {
		return fail("invalid datastore name", &types.InvalidArgument{InvalidProperty: "spec.localPath"})
	}
	if spec.RemoteHost == "" {
		return fail("remote host missing", &types.InvalidArgument{InvalidProperty: "spec.remoteHost"})
	}
	if spec.RemotePath == "" {
		return fail("remote path missing", &types.InvalidArgument{InvalidProperty: "spec.remotePath"})
	}
	host := labHostOf(dss)
	if host == nil {
		return fail("host not found", &types.ManagedObjectNotFound{Obj: dss.Host.Self})
	}
	export := spec.RemoteHost + ":" + path.Clean(spec.RemotePath)
	dc := Map.getEntityDatacenter(host)

	// A datastore of that name: the same export mounts on another host, anything else is a duplicate.
	if e := Map.FindByName(spec.LocalPath, dc.Datastore); e != nil {
		ds := e.(*Datastore)
		nas, isNas := ds.Info.(*types.NasDatastoreInfo)
		sameExport := isNas && nas.Nas != nil && nas.Nas.RemoteHost+":"+path.Clean(nas.Nas.RemotePath) == export
		if !sameExport || FindReference(dss.Datastore, ds.Self) != nil {
			return fail(fmt.Sprintf("The name '%s' already exists.", spec.LocalPath), &types.DuplicateName{Name: spec.LocalPath, Object: ds.Self})
		}
		if spec.AccessMode != labNasMode(ds) {
			return fail(fmt.Sprintf("datastore %s is mounted %s on other hosts", ds.Name, labNasMode(ds)), &types.InvalidArgument{InvalidProperty: "spec.accessMode"})
		}
		labNasMountOn(host, dss, ds, spec.AccessMode)
		r.Res = &types.CreateNasDatastoreResponse{Returnval: ds.Self}
		return r
	}
	dir, msg := labNasResolve(spec.RemoteHost, spec.RemotePath)
	if msg != "" {
		return fail(msg, &types.PlatformConfigFault{Text: msg})
	}
	id := labNasID(export)
	m := &labNasMount{export: export, dir: dir}
	local := dir
	if dir == "" {
		fm, err := labNfsMount(spec.RemoteHost, spec.RemotePath, id, spec.AccessMode == string(types.HostMountModeReadOnly))
		if err != nil {
			msg := labNfsFault(spec.RemoteHost, spec.RemotePath, err)
			return fail(msg, &types.PlatformConfigFault{Text: msg})
		}
		m.fuse, local = fm, fm.dir
	} else if spec.AccessMode == string(types.HostMountModeReadOnly) {
		bind, err := labBindReadOnly(dir, id)
		if err != nil {
			return fail(fmt.Sprintf("NFS mount %s failed: %s", export, err), &types.PlatformConfigFault{Text: err.Error()})
		}
		m.bind, local = bind, bind
	}
	ds := &Datastore{}
	ds.Name = spec.LocalPath
	ds.Self.Value = "nfs-" + id
	ds.Info = &types.NasDatastoreInfo{
		DatastoreInfo: types.DatastoreInfo{Name: spec.LocalPath, Url: local},
		Nas: &types.HostNasVolume{
			HostFileSystemVolume: types.HostFileSystemVolume{Type: spec.Type, Name: spec.LocalPath},
			RemoteHost:           spec.RemoteHost,
			RemotePath:           spec.RemotePath,
			RemoteHostNames:      []string{spec.RemoteHost},
		},
	}
	ds.Summary.Type = spec.Type
	ds.Summary.MaintenanceMode = string(types.DatastoreSummaryMaintenanceModeStateNormal)
	ds.Summary.Accessible = true
	ds.Summary.MultipleHostAccess = types.NewBool(true)
	if fault := dss.add(ctx, ds); fault != nil {
		labNasUnbind(m)
		r.Fault_ = fault
		return r
	}
	ds.Summary.Url = "ds:///vmfs/volumes/" + id + "/"
	ds.Host = append(ds.Host, types.DatastoreHostMount{Key: host.Self, MountInfo: labNasMountInfo(id, spec.AccessMode)})
	_ = ds.RefreshDatastore(&types.RefreshDatastore{This: ds.Self})
	if nas := ds.Info.(*types.NasDatastoreInfo); nas.Nas != nil {
		nas.Nas.Capacity = ds.Summary.Capacity
	}
	labNas.Lock()
	labNas.mounts[ds.Self] = m
	labNas.Unlock()
	log.Printf("lab: NFS datastore %s = %s (%s, %s) on %s", ds.Name, export, local, spec.AccessMode, host.Name)
	r.Res = &types.CreateNasDatastoreResponse{Returnval: ds.Self}
	return r
}

func labNasMountInfo(id, mode string) types.HostMountInfo {
	return types.HostMountInfo{
		Path:       "/vmfs/volumes/" + id,
		AccessMode: mode,
		Mounted:    types.NewBool(true),
		Accessible: types.NewBool(true),
	}
}

// labNasMode is the access mode a NAS datastore is mounted with.
func labNasMode(ds *Datastore) string {
	for _, h := range ds.Host {
		return h.MountInfo.AccessMode
	}
	return string(types.HostMountModeReadWrite)
}

// labNasMountOn mounts an existing NFS datastore on one more host.
func labNasMountOn(host *HostSystem, dss *HostDatastoreSystem, ds *Datastore, mode string) {
	dss.Datastore = append(dss.Datastore, ds.Self)
	host.Datastore = dss.Datastore
	parent := hostParent(&host.HostSystem)
	if FindReference(parent.Datastore, ds.Self) == nil {
		Map.AddReference(parent, &parent.Datastore, ds.Self)
	}
	id := strings.TrimPrefix(ds.Self.Value, "nfs-")
	if i := strings.Index(id, "@"); i >= 0 {
		id = id[:i]
	}
	ds.Host = append(ds.Host, types.DatastoreHostMount{Key: host.Self, MountInfo: labNasMountInfo(id, mode)})
	log.Printf("lab: NFS datastore %s also mounted on %s", ds.Name, host.Name)
}

// labBindReadOnly mounts dir read-only at <run>/nas/<id> (the server runs in the lab's run folder).
func labBindReadOnly(dir, id string) (string, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	mnt := filepath.Join(cwd, "nas", id)
	if err := os.MkdirAll(mnt, 0700); err != nil {
		return "", err
	}
	if _, err := labRun("mount", "--bind", dir, mnt); err != nil {
		return "", fmt.Errorf("a read-only mount needs root: %s", err)
	}
	if _, err := labRun("mount", "-o", "remount,ro,bind", mnt); err != nil {
		_, _ = labRun("umount", mnt)
		return "", err
	}
	return mnt, nil
}

func labNasUnbind(m *labNasMount) {
	if m != nil && m.fuse != nil {
		m.fuse.unmount()
		return
	}
	if m == nil || m.bind == "" {
		return
	}
	if _, err := labRun("umount", m.bind); err != nil {
		_, _ = labRun("umount", "-l", m.bind)
	}
	_ = os.Remove(m.bind)
}

// labVMUses tells whether any of the VM's files (home, disks and their chains, snapshots' disks) is on ds.
func labVMUses(vm *VirtualMachine, ds string) bool {
	on := func(p string) bool {
		dp, f := parseDatastorePath(p)
		return f == nil && dp.Datastore == ds
	}
	if vm.Config == nil {
		return false
	}
	if on(vm.Config.Files.VmPathName) {
		return true
	}
	devs := [][]types.BaseVirtualDevice{vm.Config.Hardware.Device}
	for _, s := range labSnapshots(vm) {
		devs = append(devs, s.Config.Hardware.Device)
	}
	for _, list := range devs {
		for _, d := range labDisks(list) {
			for b := labBacking(d); b != nil; b = b.Parent {
				if on(b.FileName) {
					return true
				}
			}
		}
	}
	return false
}

// VaultlineRemoveDatastore is RemoveDatastore: unmount from this host, the files stay.
func (dss *HostDatastoreSystem) VaultlineRemoveDatastore(ctx *Context, req *types.RemoveDatastore) soap.HasFault {
	r := &methods.RemoveDatastoreBody{}
	ds, ok := Map.Get(req.Datastore).(*Datastore)
	if !ok {
		r.Fault_ = Fault("", &types.ManagedObjectNotFound{Obj: req.Datastore})
		return r
	}
	host := labHostOf(dss)
	if host == nil || FindReference(dss.Datastore, ds.Self) == nil {
		r.Fault_ = Fault(fmt.Sprintf("datastore %s is not mounted on this host", ds.Name), &types.NotFound{})
		return r
	}
	for _, e := range Map.All("VirtualMachine") {
		vm := e.(*VirtualMachine)
		var uses bool
		Map.WithLock(vm, func() {
			uses = vm.Runtime.Host != nil && *vm.Runtime.Host == host.Self && labVMUses(vm, ds.Name)
		})
		if uses {
			r.Fault_ = Fault(fmt.Sprintf("The resource '%s' is in use.", ds.Name), &types.ResourceInUse{Type: "Datastore", Name: ds.Name})
			return r
		}
	}
	// The simulator keeps files of detached disks in layoutEx (e.g. the proxy's hot-added disks); once the host no
	// longer mounts their datastore it would fail on them, and vSphere lists only files in use anyway.
	for _, e := range Map.All("VirtualMachine") {
		vm := e.(*VirtualMachine)
		Map.WithLock(vm, func() {
			if vm.Runtime.Host == nil || *vm.Runtime.Host != host.Self || vm.LayoutEx == nil {
				return
			}
			var keep []types.VirtualMachineFileLayoutExFileInfo
			for _, f := range vm.LayoutEx.File {
				if p, fault := parseDatastorePath(f.Name); fault == nil && p.Datastore == ds.Name {
					continue
				}
				keep = append(keep, f)
			}
			vm.LayoutEx.File = keep
			RemoveReference(&vm.Datastore, ds.Self)
		})
	}
	RemoveReference(&dss.Datastore, ds.Self)
	host.Datastore = dss.Datastore
	for i, m := range ds.Host {
		if m.Key == host.Self {
			ds.Host = append(ds.Host[:i], ds.Host[i+1:]...)
			break
		}
	}
	parent := hostParent(&host.HostSystem)
	stillInParent := false
	for _, m := range ds.Host {
		if h, ok := Map.Get(m.Key).(*HostSystem); ok && hostParent(&h.HostSystem).Self == parent.Self {
			stillInParent = true
		}
	}
	if !stillInParent {
		Map.RemoveReference(parent, &parent.Datastore, ds.Self)
	}
	if len(ds.Host) == 0 {
		if p, ok := asFolderMO(Map.Get(*ds.Parent)); ok {
			folderRemoveChild(ctx, p, ds.Self)
		}
		Map.Remove(ds.Browser)
		labNas.Lock()
		m := labNas.mounts[ds.Self]
		delete(labNas.mounts, ds.Self)
		labNas.Unlock()
		labNasUnbind(m)
	}
	log.Printf("lab: datastore %s unmounted from %s", ds.Name, host.Name)
	r.Res = &types.RemoveDatastoreResponse{}
	return r
}

// ---------------------------------------------------------------------------
// RegisterVM_Task from a .vmx

type labVmx struct {
	values map[string]string
	// names: each key as the file spells it (values are looked up case-insensitively, as hostd does)
	names map[string]string
}

var labVmxLineRe = regexp.MustCompile(`^\s*([A-Za-z0-9_.:-]+)\s*=\s*"(.*)"\s*$`)

func labReadVmx(file string) (*labVmx, error) {
	b, err := ioutil.ReadFile(file)
	if err != nil {
		return nil, err
	}
	v := &labVmx{values: map[string]string{}, names: map[string]string{}}
	for _, line := range strings.Split(string(b), "\n") {
		if m := labVmxLineRe.FindStringSubmatch(line); m != nil {
			v.values[strings.ToLower(m[1])] = m[2]
			v.names[strings.ToLower(m[1])] = m[1]
		}
	}
	return v, nil
}

func (v *labVmx) get(k string) string { return v.values[strings.ToLower(k)] }

func (v *labVmx) present(k string) bool {
	p := strings.ToLower(v.get(k + ".present"))
	return p == "true" || p == "1" || p == "yes"
}

var labExtentRe = regexp.MustCompile(`(?m)^\s*RW\s+(\d+)\s+`)

// labDescriptorCapacity sums the extents of a descriptor (bytes), 0 when unknown.
func labDescriptorCapacity(desc string) int64 {
	b, err := ioutil.ReadFile(desc)
	if err != nil || len(b) > 64*1024 {
		return 0
	}
	var n int64
	for _, m := range labExtentRe.FindAllSubmatch(b, -1) {
		s, _ := strconv.ParseInt(string(m[1]), 10, 64)
		n += s * 512
	}
	return n
}

// labVmxDevices turns the .vmx's SCSI controllers and disks into device adds.
func labVmxDevices(v *labVmx, dsName, dir string) ([]types.BaseVirtualDeviceConfigSpec, types.BaseMethodFault, string) {
	var changes []types.BaseVirtualDeviceConfigSpec
	key := int32(-2000)
	for bus := int32(0); bus < 4; bus++ {
		ctl := fmt.Sprintf("scsi%d", bus)
		if !v.present(ctl) {
			continue
		}
		base := types.VirtualSCSIController{
			VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: -100 - bus}, BusNumber: bus},
			SharedBus:         types.VirtualSCSISharingNoSharing,
		}
		var dev types.BaseVirtualDevice
		switch strings.ToLower(v.get(ctl + ".virtualDev")) {
		case "pvscsi":
			dev = &types.ParaVirtualSCSIController{VirtualSCSIController: base}
		case "lsisas1068":
			dev = &types.VirtualLsiLogicSASController{VirtualSCSIController: base}
		case "buslogic":
			dev = &types.VirtualBusLogicController{VirtualSCSIController: base}
		default:
			dev = &types.VirtualLsiLogicController{VirtualSCSIController: base}
		}
		changes = append(changes, &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: dev})
		for unit := int32(0); unit < 16; unit++ {
			d := fmt.Sprintf("%s:%d", ctl, unit)
			if !v.present(d) || (v.get(d+".deviceType") != "" && !strings.Contains(strings.ToLower(v.get(d+".deviceType")), "disk")) {
				continue
			}
			name := v.get(d + ".fileName")
			if !strings.HasSuffix(strings.ToLower(name), ".vmdk") {
				continue
			}
			fileName := ""
			switch {
			case strings.HasPrefix(name, "/vmfs/volumes/"):
				parts := strings.SplitN(strings.TrimPrefix(name, "/vmfs/volumes/"), "/", 2)
				if len(parts) != 2 {
					return nil, &types.InvalidArgument{InvalidProperty: d + ".fileName"}, "bad disk path " + name
				}
				fileName = fmt.Sprintf("[%s] %s", parts[0], parts[1])
			case path.IsAbs(name):
				return nil, &types.InvalidArgument{InvalidProperty: d + ".fileName"}, "disk path outside any datastore: " + name
			default:
				fileName = fmt.Sprintf("[%s] %s", dsName, path.Join(dir, name))
			}
			local, err := labLocalPath(fileName)
			if err != nil {
				return nil, &types.FileNotFound{FileFault: types.FileFault{File: fileName}}, err.Error()
			}
			if _, err := os.Stat(local); err != nil {
				return nil, &types.FileNotFound{FileFault: types.FileFault{File: fileName}}, "disk file missing: " + fileName
			}
			capacity := labDescriptorCapacity(local)
			mode := strings.ReplaceAll(strings.ToLower(v.get(d+".mode")), "-", "_")
			if mode == "" {
				mode = string(types.VirtualDiskModePersistent)
			}
			u := unit
			disk := &types.VirtualDisk{
				VirtualDevice: types.VirtualDevice{
					Key:           key,
					ControllerKey: -100 - bus,
					UnitNumber:    &u,
					Backing: &types.VirtualDiskFlatVer2BackingInfo{
						VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: fileName},
						DiskMode:                     mode,
						ThinProvisioned:              types.NewBool(true),
					},
				},
				CapacityInKB:    capacity / 1024,
				CapacityInBytes: capacity,
			}
			key--
			changes = append(changes, &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: disk})
		}
	}
	return changes, nil, ""
}

// VaultlineRegisterVMTask is RegisterVM_Task that brings the .vmx's hardware (disks) along.
func (f *Folder) VaultlineRegisterVMTask(ctx *Context, c *types.RegisterVM_Task) soap.HasFault {
	failed := func(msg string, fault types.BaseMethodFault) soap.HasFault {
		task := CreateTask(f, "registerVm", func(*Task) (types.AnyType, types.BaseMethodFault) {
			log.Printf("lab: registerVm %s: %s", c.Path, msg)
			return nil, fault
		})
		return &methods.RegisterVM_TaskBody{Res: &types.RegisterVM_TaskResponse{Returnval: task.Run()}}
	}
	p, fault := parseDatastorePath(c.Path)
	if fault != nil || path.Ext(p.Path) != ".vmx" {
		return failed("bad path", &types.InvalidArgument{InvalidProperty: "path"})
	}
	dc := Map.getEntityDatacenter(f)
	e := Map.FindByName(p.Datastore, dc.Datastore)
	if e == nil {
		return failed("no datastore", &types.InvalidDatastorePath{DatastorePath: c.Path})
	}
	ds := e.(*Datastore)
	// The VM runs on a host that mounts the datastore (the simulator would pick any host of the pool).
	if c.Host == nil && c.Pool != nil && !c.AsTemplate {
		if pool, ok := Map.Get(*c.Pool).(*ResourcePool); ok {
			var hosts []*HostSystem
			for _, he := range Map.All("HostSystem") {
				h := he.(*HostSystem)
				if hostParent(&h.HostSystem).Self == pool.Owner && FindReference(h.Datastore, ds.Self) != nil {
					hosts = append(hosts, h)
				}
			}
			sort.Slice(hosts, func(i, j int) bool { return hosts[i].Name < hosts[j].Name })
			if len(hosts) == 0 {
				return failed("no host", &types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name})
			}
			c.Host = &hosts[0].Self
		}
	} else if c.Host != nil {
		if h, ok := Map.Get(*c.Host).(*HostSystem); !ok || FindReference(h.Datastore, ds.Self) == nil {
			return failed("host does not mount the datastore", &types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name})
		}
	}
	local := path.Join(ds.Info.GetDatastoreInfo().Url, p.Path)
	vmx, err := labReadVmx(local)
	if err != nil {
		return failed(err.Error(), &types.NotFound{})
	}
	if c.Name == "" {
		c.Name = vmx.get("displayName")
	}
	if c.Name == "" {
		c.Name = path.Base(path.Dir(p.Path))
	}
	dir := path.Dir(p.Path)
	changes, fault, msg := labVmxDevices(vmx, ds.Name, dir)
	if fault != nil {
		return failed(msg, fault)
	}
	// hostd writes the nvram and vmware.log when the VM first runs; the simulator wants them at once, and
	// wants the nvram named after the VM. On a read-only datastore the VM registers under the name of the
	// nvram it has (the .vmx's "nvram", else its own base name) and is renamed afterwards.
	wanted := c.Name
	for _, name := range []string{c.Name + ".nvram", "vmware.log"} {
		file := path.Join(path.Dir(local), name)
		if _, err := os.Stat(file); os.IsNotExist(err) {
			_ = ioutil.WriteFile(file, nil, 0600)
		}
	}
	if _, err := os.Stat(path.Join(path.Dir(local), c.Name+".nvram")); err != nil {
		for _, n := range []string{vmx.get("nvram"), strings.TrimSuffix(path.Base(p.Path), ".vmx") + ".nvram"} {
			if n == "" || path.Base(n) != n || !strings.HasSuffix(n, ".nvram") {
				continue
			}
			if _, err := os.Stat(path.Join(path.Dir(local), n)); err == nil {
				c.Name = strings.TrimSuffix(n, ".nvram")
				break
			}
		}
	}
	res := f.RegisterVMTask(ctx, c).(*methods.RegisterVM_TaskBody)
	task, ok := Map.Get(res.Res.Returnval).(*Task)
	if !ok || task.Info.Error != nil || task.Info.Result == nil {
		return res
	}
	vm, ok := Map.Get(task.Info.Result.(types.ManagedObjectReference)).(*VirtualMachine)
	if !ok {
		return res
	}
	if vm.Name != wanted {
		RenameTask(vm, &types.Rename_Task{This: vm.Self, NewName: wanted})
		vm.Config.Name = vm.Name
		vm.Summary.Config.Name = vm.Name
	}
	if mem, err := strconv.Atoi(vmx.get("memSize")); err == nil && mem > 0 {
		vm.Config.Hardware.MemoryMB = int32(mem)
		vm.Summary.Config.MemorySizeMB = int32(mem)
	}
	if cpus, err := strconv.Atoi(vmx.get("numvcpus")); err == nil && cpus > 0 {
		vm.Config.Hardware.NumCPU = int32(cpus)
		vm.Summary.Config.NumCpu = int32(cpus)
	}
	if g := vmx.get("guestOS"); g != "" {
		vm.Config.GuestId = g
	}
	if fault := vm.configureDevices(&types.VirtualMachineConfigSpec{DeviceChange: changes}); fault != nil {
		log.Printf("lab: registerVm %s: devices: %T", c.Path, fault)
	}
	labFixHomeLayout(vm, dir)
	labVmxExtraConfig(vm, vmx)
	return res
}

// labVmxMapped are the .vmx keys hostd turns into config properties rather than extraConfig entries.
var labVmxMapped = regexp.MustCompile(`^(\.encoding|config\.version|virtualhw\.version|displayname|memsize|numvcpus|guestos|firmware|cpuid\.corespersocket|uuid\..*|(scsi|sata|nvme|ide|ethernet)\d+([.:].*)?)$`)

// labVmxExtraConfig lists the .vmx's other keys in config.extraConfig, as vCenter shows a registered VM's
// (e.g. an application's marker), sorted by key.
func labVmxExtraConfig(vm *VirtualMachine, vmx *labVmx) {
	var keys []string
	for lower := range vmx.values {
		if !labVmxMapped.MatchString(lower) {
			keys = append(keys, lower)
		}
	}
	sort.Strings(keys)
	for _, lower := range keys {
		vm.Config.ExtraConfig = append(vm.Config.ExtraConfig, &types.OptionValue{Key: vmx.names[lower], Value: vmx.values[lower]})
	}
}

// labFixHomeLayout names the home's files in layoutEx by their path in the datastore: the simulator's
// RefreshStorageInfo lists a home folder's files by their base name ("[ds] app.vmx" for "[ds] app/app.vmx"), as
// vCenter never does. A file then listed twice (once by the disk layout, with its folder) is kept once, under the
// key the disk layout refers to (the later one).
func labFixHomeLayout(vm *VirtualMachine, dir string) {
	if dir == "." || dir == "" {
		return
	}
	files := vm.LayoutEx.File
	for i := range files {
		if p, fault := parseDatastorePath(files[i].Name); fault == nil && path.Dir(p.Path) == "." {
			files[i].Name = fmt.Sprintf("[%s] %s", p.Datastore, path.Join(dir, p.Path))
		}
	}
	last := map[string]int{}
	for i, f := range files {
		last[f.Name] = i
	}
	var kept []types.VirtualMachineFileLayoutExFileInfo
	for i, f := range files {
		if last[f.Name] == i {
			kept = append(kept, f)
		}
	}
	vm.LayoutEx.File = kept
}

// ---------------------------------------------------------------------------
// RelocateVM_Task: Storage vMotion

// labMove is one file to copy.
type labMove struct{ src, dst string }

// labDiskFileRe matches the files of a disk whose base descriptor is <stem>.vmdk.
func labDiskFileRe(stem string) *regexp.Regexp {
	return regexp.MustCompile(`^\.?` + regexp.QuoteMeta(stem) + `(-\d{6})?(-flat|-delta|-sesparse|-ctk)?\.(vmdk|log)(\.writes)?$`)
}

// labDsPathOf is "[ds] rel" split into the datastore and the path, and the datastore object.
func labDatastoreByName(name string) *Datastore {
	for _, e := range Map.All("Datastore") {
		if ds := e.(*Datastore); ds.Name == name {
			return ds
		}
	}
	return nil
}

func labMountMode(ds *Datastore, host types.ManagedObjectReference) string {
	for _, m := range ds.Host {
		if m.Key == host {
			return m.MountInfo.AccessMode
		}
	}
	return string(types.HostMountModeReadWrite)
}

func labFreeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 1 << 62
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// renamedOr is the new name of a moved file, or the name itself.
func renamedOr(renamed map[string]string, p string) string {
	if n, ok := renamed[p]; ok {
		return n
	}
	return p
}

var labVmxFileNameRe = regexp.MustCompile(`(?mi)^(\s*[a-z0-9_.:-]+\.filename\s*=\s*")([^"]*)(".*)$`)
var labVmxNvramRe = regexp.MustCompile(`(?mi)^(\s*nvram\s*=\s*")([^"]*)(".*)$`)

// labRewriteVmx points a .vmx's disk file names (and nvram) at the renamed files, as hostd rewrites it.
func labRewriteVmx(file, name string, newValue func(string) string) {
	if file == "" {
		return
	}
	b, err := ioutil.ReadFile(file)
	if err != nil || len(b) == 0 {
		return
	}
	text := labVmxFileNameRe.ReplaceAllStringFunc(string(b), func(line string) string {
		m := labVmxFileNameRe.FindStringSubmatch(line)
		return m[1] + newValue(m[2]) + m[3]
	})
	text = labVmxNvramRe.ReplaceAllString(text, "${1}"+name+".nvram${3}")
	if text != string(b) {
		_ = ioutil.WriteFile(file, []byte(text), 0600)
	}
}

// VaultlineRelocateVMTask is RelocateVM_Task; a storage move copies the files in the background.
func (vm *VirtualMachine) VaultlineRelocateVMTask(ctx *Context, req *types.RelocateVM_Task) soap.HasFault {
	storage := req.Spec.Datastore != nil
	for _, d := range req.Spec.Disk {
		if d.Datastore.Value != "" {
			storage = true
		}
	}
	if !storage {
		return vm.RelocateVMTask(ctx, req)
	}
	ref := vm.Self
	task := labStartTask(ref, vm, "relocateVm", func(t *labTask) (types.AnyType, types.BaseMethodFault) {
		var fault types.BaseMethodFault
		t.set(1)
		if !labLockedVM(ref, func(vm *VirtualMachine) {
			fault = labRelocate(ctx, vm, req, t)
		}) {
			return nil, &types.ManagedObjectNotFound{Obj: ref}
		}
		return nil, fault
	})
	return &methods.RelocateVM_TaskBody{Res: &types.RelocateVM_TaskResponse{Returnval: task}}
}

// labRelocate does the storage migration holding the VM (its guest is stunned meanwhile:
// ESXi instead mirrors the guest's writes to both copies while it copies).
func labRelocate(ctx *Context, vm *VirtualMachine, req *types.RelocateVM_Task, t *labTask) types.BaseMethodFault {
	spec := req.Spec
	host := *vm.Runtime.Host
	hs, _ := Map.Get(host).(*HostSystem)
	home, f := parseDatastorePath(vm.Config.Files.VmPathName)
	if f != nil {
		return f
	}
	srcHome := labDatastoreByName(home.Datastore)
	if srcHome == nil {
		return &types.InvalidDatastore{Name: home.Datastore}
	}
	homeDir := path.Dir(home.Path)
	target := func(ref types.ManagedObjectReference) (*Datastore, types.BaseMethodFault) {
		ds, ok := Map.Get(ref).(*Datastore)
		if !ok {
			return nil, &types.ManagedObjectNotFound{Obj: ref}
		}
		if hs == nil || FindReference(hs.Datastore, ds.Self) == nil || !ds.Summary.Accessible {
			return nil, &types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name}
		}
		if labMountMode(ds, host) == string(types.HostMountModeReadOnly) {
			return nil, &types.DatastoreNotWritableOnHost{InvalidDatastore: types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name}, Host: host}
		}
		return ds, nil
	}
	homeDst := srcHome
	if spec.Datastore != nil {
		ds, fault := target(*spec.Datastore)
		if fault != nil {
			return fault
		}
		homeDst = ds
	}
	disks := labDisks(vm.Config.Hardware.Device)
	diskDst := map[int32]*Datastore{}
	for _, d := range disks {
		diskDst[d.Key] = homeDst
	}
	for _, loc := range spec.Disk {
		found := false
		for _, d := range disks {
			if d.Key == loc.DiskId {
				found = true
			}
		}
		if !found {
			return &types.InvalidArgument{InvalidProperty: "spec.disk.diskId"}
		}
		ds, fault := target(loc.Datastore)
		if fault != nil {
			return fault
		}
		diskDst[loc.DiskId] = ds
	}
	snaps := labSnapshots(vm)
	if len(snaps) > 0 {
		// The chain moves with the VM; per-disk placement of a VM with snapshots is not modelled.
		for _, d := range disks {
			if diskDst[d.Key] != homeDst {
				return &types.NotSupported{}
			}
		}
	}

	// Destination: a folder named after the VM (made unique per target datastore), and the files renamed
	// after the VM's inventory name, as Storage vMotion does: <name>.vmx, <name>.nvram, <name>-SnapshotN.vmsn,
	// disks <name>.vmdk, <name>_1.vmdk, ... in disk order (chain links keep their -00000N suffix).
	dstDirs := map[string]string{}
	dstDirOf := func(ds *Datastore) string {
		if d, ok := dstDirs[ds.Name]; ok {
			return d
		}
		name := vm.Name
		for i := 1; ; i++ {
			if _, err := os.Stat(path.Join(ds.Info.GetDatastoreInfo().Url, name)); os.IsNotExist(err) {
				break
			}
			name = fmt.Sprintf("%s_%d", vm.Name, i)
		}
		dstDirs[ds.Name] = name
		return name
	}

	var moves []labMove
	renamed := map[string]string{} // "[ds] path" of each moved file -> its new "[ds] path"
	type descRename struct{ file, old, new string }
	var descs []descRename        // copied descriptors whose file names change
	diskFile := map[string]bool{} // local files that belong to a disk
	descRe := regexp.MustCompile(`^(-\d{6})?\.vmdk$`)
	for i, d := range labSortedDisks(vm.Config.Hardware.Device) {
		root := labChainRoot(labBacking(d))
		rp, f := parseDatastorePath(root.FileName)
		if f != nil {
			return f
		}
		srcDs := labDatastoreByName(rp.Datastore)
		if srcDs == nil {
			return &types.InvalidDatastore{Name: rp.Datastore}
		}
		srcDir := path.Dir(rp.Path)
		localDir := path.Join(srcDs.Info.GetDatastoreInfo().Url, srcDir)
		oldStem := strings.TrimSuffix(path.Base(rp.Path), ".vmdk")
		newStem := vm.Name
		if i > 0 {
			newStem = fmt.Sprintf("%s_%d", vm.Name, i)
		}
		re := labDiskFileRe(oldStem)
		entries, err := ioutil.ReadDir(localDir)
		if err != nil {
			return labFaultOf(labFileErrorOf(root.FileName, err))
		}
		dst := diskDst[d.Key]
		move := dst != srcDs
		var dstDir string
		if move {
			dstDir = dstDirOf(dst)
		}
		for _, e := range entries {
			if e.IsDir() || !re.MatchString(e.Name()) {
				continue
			}
			src := path.Join(localDir, e.Name())
			diskFile[src] = true
			if !move {
				continue
			}
			hidden := strings.HasPrefix(e.Name(), ".")
			rest := strings.TrimPrefix(strings.TrimPrefix(e.Name(), "."), oldStem)
			newName := newStem + rest
			if hidden {
				newName = "." + newName
			}
			dstLocal := path.Join(dst.Info.GetDatastoreInfo().Url, dstDir, newName)
			moves = append(moves, labMove{src, dstLocal})
			renamed[fmt.Sprintf("[%s] %s", srcDs.Name, path.Join(srcDir, e.Name()))] = fmt.Sprintf("[%s] %s", dst.Name, path.Join(dstDir, newName))
			if !hidden && descRe.MatchString(rest) && oldStem != newStem {
				descs = append(descs, descRename{dstLocal, oldStem, newStem})
			}
		}
	}
	homeDirMove := map[string]string{} // "[ds] dir" forms of the home folder -> the new one
	var dstVmx string
	if homeDst != srcHome {
		dstDir := dstDirOf(homeDst)
		oldBase := strings.TrimSuffix(path.Base(home.Path), ".vmx")
		atRoot := homeDir == "." || homeDir == ""
		to := fmt.Sprintf("[%s] %s", homeDst.Name, dstDir)
		for _, from := range []string{fmt.Sprintf("[%s] %s", srcHome.Name, homeDir), fmt.Sprintf("[%s] %s/", srcHome.Name, homeDir), fmt.Sprintf("[%s]", srcHome.Name), fmt.Sprintf("[%s] ", srcHome.Name)} {
			if atRoot || !strings.HasSuffix(from, "]") && !strings.HasSuffix(from, "] ") {
				homeDirMove[from] = to
			}
		}
		localDir := path.Join(srcHome.Info.GetDatastoreInfo().Url, homeDir)
		entries, err := ioutil.ReadDir(localDir)
		if err != nil {
			return labFaultOf(labFileErrorOf(vm.Config.Files.VmPathName, err))
		}
		vmsnRe := regexp.MustCompile(`^.*-Snapshot(\d+)\.vmsn$`)
		for _, e := range entries {
			src := path.Join(localDir, e.Name())
			name := e.Name()
			if e.IsDir() || diskFile[src] {
				continue
			}
			if atRoot && !strings.HasPrefix(name, oldBase) && !strings.HasPrefix(name, "vmware") {
				continue // a VM at the datastore's root: only its own files
			}
			newName := name
			switch {
			case name == oldBase+".vmx":
				newName = vm.Name + ".vmx"
			case strings.HasSuffix(name, ".nvram"):
				newName = vm.Name + ".nvram"
			case vmsnRe.MatchString(name):
				newName = fmt.Sprintf("%s-Snapshot%s.vmsn", vm.Name, vmsnRe.FindStringSubmatch(name)[1])
			}
			dstLocal := path.Join(homeDst.Info.GetDatastoreInfo().Url, dstDir, newName)
			if name == oldBase+".vmx" {
				dstVmx = dstLocal
			}
			moves = append(moves, labMove{src, dstLocal})
			renamed[fmt.Sprintf("[%s] %s", srcHome.Name, path.Join(homeDir, name))] = fmt.Sprintf("[%s] %s", homeDst.Name, path.Join(dstDir, newName))
		}
	}

	// Space first: a target without room fails before anything is copied.
	need := map[string]int64{}
	sizes := make([]int64, len(moves))
	var total int64
	for i, m := range moves {
		st, err := os.Stat(m.src)
		if err != nil {
			return labFaultOf(labFileErrorOf(m.src, err))
		}
		sizes[i] = st.Size()
		areas, err := labAllocated(m.src, st.Size())
		if err != nil {
			return labFaultOf(labFileErrorOf(m.src, err))
		}
		n := labSum(areas)
		total += n
		need[path.Dir(m.dst)] += n + 4096
		if _, err := os.Stat(m.dst); err == nil {
			return &types.FileAlreadyExists{FileFault: types.FileFault{File: m.dst}}
		}
	}
	dsOfDir := func(dir string) string {
		for _, e := range Map.All("Datastore") {
			ds := e.(*Datastore)
			if strings.HasPrefix(dir+"/", ds.Info.GetDatastoreInfo().Url+"/") {
				return ds.Name
			}
		}
		return ""
	}
	for dir, n := range need {
		parent := path.Dir(dir)
		if free := labFreeBytes(parent); free < n {
			name := dsOfDir(dir)
			return &types.NoDiskSpace{FileFault: types.FileFault{File: fmt.Sprintf("[%s] %s", name, path.Base(dir))}, Datastore: name}
		}
	}

	// Copy, sparse and bit-exact, with progress by bytes.
	t.phase(1, 95, total)
	var made []string
	var madeDirs []string
	undo := func() {
		for _, f := range made {
			_ = os.Remove(f)
		}
		for i := len(madeDirs) - 1; i >= 0; i-- {
			_ = os.Remove(madeDirs[i])
		}
	}
	for i, m := range moves {
		dir := path.Dir(m.dst)
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			if err := os.MkdirAll(dir, 0700); err != nil {
				undo()
				return labFaultOf(labFileErrorOf(m.dst, err))
			}
			madeDirs = append(madeDirs, dir)
		}
		err := labSparseCopy(m.src, m.dst, sizes[i], t.add)
		if err == nil {
			err = labFsync(m.dst)
		}
		if _, exists := os.Stat(m.dst); exists == nil {
			made = append(made, m.dst)
		}
		if err != nil {
			undo()
			name := dsOfDir(dir)
			file := fmt.Sprintf("[%s] %s/%s", name, path.Base(dir), path.Base(m.dst))
			if de, ok := err.(labDstError); ok {
				err = de.err
			}
			return labFaultOf(labFileErrorOf(file, err))
		}
	}

	// The copies name the renamed files: descriptors (extents, parent hints) and the .vmx (disk file names).
	for _, d := range descs {
		if b, err := ioutil.ReadFile(d.file); err == nil && len(b) < 64*1024 {
			text := strings.ReplaceAll(string(b), `"`+d.old, `"`+d.new)
			_ = ioutil.WriteFile(d.file, []byte(text), 0600)
		}
	}
	vmxFile := dstVmx
	if vmxFile == "" {
		vmxFile, _ = labLocalPath(vm.Config.Files.VmPathName)
	}
	labRewriteVmx(vmxFile, vm.Name, func(v string) string {
		old := v
		switch {
		case strings.HasPrefix(v, "/vmfs/volumes/"):
			parts := strings.SplitN(strings.TrimPrefix(v, "/vmfs/volumes/"), "/", 2)
			if len(parts) == 2 {
				old = fmt.Sprintf("[%s] %s", parts[0], parts[1])
			}
		case !path.IsAbs(v):
			old = fmt.Sprintf("[%s] %s", srcHome.Name, path.Join(homeDir, v))
		}
		nw, ok := renamed[old]
		if !ok {
			return v
		}
		np, _ := parseDatastorePath(nw)
		vp, _ := parseDatastorePath(renamedOr(renamed, vm.Config.Files.VmPathName))
		if np.Datastore == vp.Datastore && path.Dir(np.Path) == path.Dir(vp.Path) {
			return path.Base(np.Path)
		}
		return "/vmfs/volumes/" + np.Datastore + "/" + np.Path
	})

	// Switch the VM to the copies.
	rename := func(p string) string { return renamedOr(renamed, p) }
	for _, d := range disks {
		for b := labBacking(d); b != nil; b = b.Parent {
			b.FileName = rename(b.FileName)
		}
	}
	for _, s := range snaps {
		for _, d := range labDisks(s.Config.Hardware.Device) {
			for b := labBacking(d); b != nil; b = b.Parent {
				b.FileName = rename(b.FileName)
			}
		}
		s.Config.Files.VmPathName = rename(s.Config.Files.VmPathName)
	}
	var changes []types.PropertyChange
	if homeDst != srcHome {
		files := vm.Config.Files
		files.VmPathName = rename(files.VmPathName)
		for _, p := range []*string{&files.SnapshotDirectory, &files.SuspendDirectory, &files.LogDirectory} {
			if to, ok := homeDirMove[*p]; ok {
				*p = to
			} else {
				*p = rename(*p)
			}
		}
		vm.Config.Files = files
		if lp, err := labLocalPath(files.VmPathName); err == nil {
			vm.log = path.Join(path.Dir(lp), "vmware.log")
		}
		changes = append(changes,
			types.PropertyChange{Name: "config.files", Val: vm.Config.Files},
			types.PropertyChange{Name: "summary.config.vmPathName", Val: files.VmPathName},
		)
		vm.Summary.Config.VmPathName = files.VmPathName
	}
	// Datastores in use, and the layout, under the new file names (keys kept: snapshots refer to them).
	used := map[string]bool{}
	hp, _ := parseDatastorePath(vm.Config.Files.VmPathName)
	used[hp.Datastore] = true
	for _, d := range disks {
		for b := labBacking(d); b != nil; b = b.Parent {
			if p, f := parseDatastorePath(b.FileName); f == nil {
				used[p.Datastore] = true
			}
		}
	}
	var dsRefs []types.ManagedObjectReference
	for _, e := range Map.All("Datastore") {
		ds := e.(*Datastore)
		if used[ds.Name] {
			dsRefs = append(dsRefs, ds.Self)
			if FindReference(ds.Vm, vm.Self) == nil {
				ds.Vm = append(ds.Vm, vm.Self)
			}
		} else if FindReference(ds.Vm, vm.Self) != nil {
			RemoveReference(&ds.Vm, vm.Self)
		}
	}
	vm.Datastore = dsRefs
	var files []types.VirtualMachineFileLayoutExFileInfo
	for _, f := range vm.LayoutEx.File {
		f.Name = rename(f.Name)
		if p, fault := parseDatastorePath(f.Name); fault != nil || !used[p.Datastore] {
			continue // a file of a datastore the VM no longer uses (e.g. a detached disk's)
		}
		if lp, err := labLocalPath(f.Name); err == nil {
			if st, err := os.Stat(lp); err == nil {
				f.Size, f.UniqueSize = st.Size(), st.Size()
			}
		}
		files = append(files, f)
	}
	vm.LayoutEx.File = files
	for from, to := range renamed {
		if strings.HasPrefix(from, fmt.Sprintf("[%s] ", srcHome.Name)) && homeDst != srcHome {
			if np, fault := parseDatastorePath(to); fault == nil && !strings.HasPrefix(path.Base(np.Path), ".") && !strings.HasSuffix(np.Path, ".vmdk") && !strings.HasSuffix(np.Path, "-ctk.log") {
				if st, err := os.Stat(path.Join(homeDst.Info.GetDatastoreInfo().Url, np.Path)); err == nil {
					vm.addFileLayoutEx(*np, st.Size()) // the home's files (.vmx, .nvram, logs, .vmsn), listed once
				}
			}
		}
	}
	relName := func(p string) string {
		if strings.HasPrefix(p, "[") {
			return rename(p)
		}
		if nw, ok := renamed[fmt.Sprintf("[%s] %s", srcHome.Name, p)]; ok {
			np, _ := parseDatastorePath(nw)
			return np.Path
		}
		return p
	}
	if vm.Layout != nil {
		for i := range vm.Layout.ConfigFile {
			vm.Layout.ConfigFile[i] = relName(vm.Layout.ConfigFile[i])
		}
		for i := range vm.Layout.LogFile {
			vm.Layout.LogFile[i] = relName(vm.Layout.LogFile[i])
		}
		for i := range vm.Layout.Snapshot {
			for j := range vm.Layout.Snapshot[i].SnapshotFile {
				vm.Layout.Snapshot[i].SnapshotFile[j] = relName(vm.Layout.Snapshot[i].SnapshotFile[j])
			}
		}
	}
	_ = vm.updateDiskLayouts()
	changes = append(changes,
		types.PropertyChange{Name: "config.hardware.device", Val: vm.Config.Hardware.Device},
		types.PropertyChange{Name: "datastore", Val: vm.Datastore},
		types.PropertyChange{Name: "layoutEx", Val: vm.LayoutEx},
		types.PropertyChange{Name: "layout", Val: vm.Layout},
	)
	Map.Update(vm, changes)

	// The source files go once the VM runs from the copies (a read-only source keeps them).
	t.phase(95, 99, int64(len(moves)))
	srcDirs := map[string]bool{}
	for _, m := range moves {
		if err := os.Remove(m.src); err != nil {
			log.Printf("lab: relocate %s: source %s kept: %s", vm.Name, m.src, err)
		}
		srcDirs[path.Dir(m.src)] = true
		t.add(1)
	}
	for dir := range srcDirs {
		_ = os.Remove(dir) // only when empty
	}
	for _, e := range Map.All("Datastore") {
		_ = e.(*Datastore).RefreshDatastore(&types.RefreshDatastore{This: e.Reference()})
	}

	// A compute part of the spec (host, pool, folder) is the simulator's.
	if spec.Host != nil || spec.Pool != nil || spec.Folder != nil {
		rest := *req
		rest.Spec.Datastore = nil
		rest.Spec.Disk = nil
		vm.RelocateVMTask(ctx, &rest)
	}
	log.Printf("lab: relocated %s: %d files, %d bytes, home %s", vm.Name, len(moves), total, vm.Config.Files.VmPathName)
	return nil
}

func labFsync(file string) error {
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// labNasShutdown unmounts the NFS datastores' mounts (the exported folders stay).
func labNasShutdown() {
	labNas.Lock()
	defer labNas.Unlock()
	for ref, m := range labNas.mounts {
		labNasUnbind(m)
		delete(labNas.mounts, ref)
	}
}

// labUnmountedDisk names the first disk a reconfiguration would add from a datastore
// the VM's host does not mount (the simulator would panic on it; vSphere refuses it).
func labUnmountedDisk(vm *VirtualMachine, spec *types.VirtualMachineConfigSpec) (*Datastore, string) {
	if vm.Runtime.Host == nil {
		return nil, ""
	}
	host, ok := Map.Get(*vm.Runtime.Host).(*HostSystem)
	if !ok {
		return nil, ""
	}
	for _, c := range spec.DeviceChange {
		dc := c.GetVirtualDeviceConfigSpec()
		if dc.Operation != types.VirtualDeviceConfigSpecOperationAdd {
			continue
		}
		disk, ok := dc.Device.(*types.VirtualDisk)
		if !ok {
			continue
		}
		b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			continue
		}
		p, f := parseDatastorePath(b.FileName)
		if f != nil || p.Datastore == "" {
			continue
		}
		if ds := labDatastoreByName(p.Datastore); ds != nil && FindReference(host.Datastore, ds.Self) == nil {
			return ds, b.FileName
		}
	}
	return nil, ""
}
