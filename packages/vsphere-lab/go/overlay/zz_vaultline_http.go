// Vaultline lab extension: ExportVm / ExportSnapshot leases served at
// /lab-nfc/<lease>/<disk-N.vmdk> as streamOptimized VMDK, whole and in order,
// as vSphere serves them (zz_vaultline_vsan.go), and the lab-only JSON endpoints under /lab/
// used by the TypeScript harness (guest writes, VM and inventory lookups).
// Like stock /folder, these are unauthenticated; the lab listens on loopback.

package simulator

import (
	"encoding/json"
	"fmt"
	"io/ioutil"
	"log"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func labExportLease(ctx *Context, entity types.ManagedObjectReference, vm string, devices []types.BaseVirtualDevice) *HttpNfcLease {
	lease := NewHttpNfcLease(ctx, entity)
	scheme := "https"
	if ctx.svc != nil && ctx.svc.Listen != nil && ctx.svc.Listen.Scheme != "" {
		scheme = ctx.svc.Listen.Scheme
	}
	var total int64
	for i, disk := range labSortedDisks(devices) {
		b := labBacking(disk)
		desc, err := labLocalPath(b.FileName)
		if err != nil {
			continue
		}
		name := fmt.Sprintf("disk-%d.vmdk", i)
		size := getDiskSize(disk)
		lease.files[name] = labFlat(desc)
		labLeaseDisks.Store(lease.Self.Value+"/"+name, labLeaseDisk{capacity: size, uuid: b.Uuid})
		total += size / 1024
		key := labLeaseKey(vm, devices, disk)
		// No fileSize: a streamOptimized stream's length is known only once it is sent.
		lease.Info.DeviceUrl = append(lease.Info.DeviceUrl, types.HttpNfcLeaseDeviceUrl{
			Key:       key,
			ImportKey: key,
			Url:       fmt.Sprintf("%s://*/lab-nfc/%s/%s", scheme, url.PathEscape(lease.Self.Value), name),
			Disk:      types.NewBool(true),
			TargetId:  name,
		})
	}
	lease.Info.TotalDiskCapacityInKB = total
	return lease
}

type labLeaseDisk struct {
	capacity int64
	uuid     string
}

// "<lease>/<disk-N.vmdk>" -> the disk's capacity and UUID
var labLeaseDisks sync.Map

// ExportVm returns a lease for a powered-off VM's disks.
func (vm *VirtualMachine) ExportVm(ctx *Context, req *types.ExportVm) soap.HasFault {
	body := new(methods.ExportVmBody)
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		body.Fault_ = Fault("the VM must be powered off", &types.InvalidPowerState{
			RequestedState: types.VirtualMachinePowerStatePoweredOff,
			ExistingState:  vm.Runtime.PowerState,
		})
		return body
	}
	lease := labExportLease(ctx, vm.Self, vm.Self.Value, vm.Config.Hardware.Device)
	body.Res = &types.ExportVmResponse{Returnval: lease.Self}
	return body
}

// ExportSnapshot returns a lease for a snapshot's (frozen) disks.
func (s *VirtualMachineSnapshot) ExportSnapshot(ctx *Context, req *types.ExportSnapshot) soap.HasFault {
	body := new(methods.ExportSnapshotBody)
	lease := labExportLease(ctx, s.Self, s.Vm.Value, s.Config.Hardware.Device)
	body.Res = &types.ExportSnapshotResponse{Returnval: lease.Self}
	return body
}

func labServeNFC(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.Split(strings.TrimPrefix(r.URL.Path, "/lab-nfc/"), "/")
	if len(p) != 2 {
		http.NotFound(w, r)
		return
	}
	l, ok := nfcLease.Load(types.ManagedObjectReference{Type: "HttpNfcLease", Value: p[0]})
	if !ok {
		http.NotFound(w, r)
		return
	}
	file, ok := l.(*HttpNfcLease).files[p[1]]
	if !ok {
		http.NotFound(w, r)
		return
	}
	d, ok := labLeaseDisks.Load(p[0] + "/" + p[1])
	if !ok {
		http.NotFound(w, r)
		return
	}
	if _, err := os.Stat(file); err != nil {
		http.NotFound(w, r)
		return
	}
	// Range is ignored, as by vSphere: a streamOptimized disk is sent whole, from its header.
	w.Header().Set("Content-Type", "application/x-vnd.vmware-streamVmdk")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if err := labStreamOptimized(w, file, d.(labLeaseDisk).capacity, d.(labLeaseDisk).uuid); err != nil {
		log.Printf("lab: export %s: %s", p[1], err)
		// The client sees a stream without its end-of-stream marker.
		panic(http.ErrAbortHandler)
	}
}

// ---------------------------------------------------------------------------
// /lab/ JSON endpoints

var labLabelRe = regexp.MustCompile(`(\d+)$`)

// labSortedDisks orders disks by the number in their label ("Hard disk 2"), then key.
func labSortedDisks(devices []types.BaseVirtualDevice) []*types.VirtualDisk {
	disks := labDisks(devices)
	num := func(d *types.VirtualDisk) int {
		if d.DeviceInfo != nil {
			if m := labLabelRe.FindString(d.DeviceInfo.GetDescription().Label); m != "" {
				n, _ := strconv.Atoi(m)
				return n
			}
		}
		return 1 << 30
	}
	sort.SliceStable(disks, func(i, j int) bool {
		a, b := num(disks[i]), num(disks[j])
		if a != b {
			return a < b
		}
		return disks[i].Key < disks[j].Key
	})
	return disks
}

type labDiskJSON struct {
	Key           int32    `json:"key"`
	Label         string   `json:"label"`
	Controller    string   `json:"controller"`
	ControllerKey int32    `json:"controllerKey"`
	UnitNumber    int32    `json:"unitNumber"`
	FileName      string   `json:"fileName"`
	FlatPath      string   `json:"flatPath"`
	CapacityBytes int64    `json:"capacityBytes"`
	UUID          string   `json:"uuid"`
	ChangeID      string   `json:"changeId"`
	Thin          bool     `json:"thin"`
	Parents       []string `json:"parents"`
}

func labDisksJSON(devices []types.BaseVirtualDevice) []labDiskJSON {
	list := make([]labDiskJSON, 0)
	for _, d := range labSortedDisks(devices) {
		b := labBacking(d)
		desc, _ := labLocalPath(b.FileName)
		j := labDiskJSON{Key: d.Key, FileName: b.FileName, FlatPath: labFlat(desc), CapacityBytes: getDiskSize(d),
			UUID: b.Uuid, ChangeID: b.ChangeId, Thin: labThin(b), ControllerKey: d.ControllerKey, Parents: []string{}}
		if d.DeviceInfo != nil {
			j.Label = d.DeviceInfo.GetDescription().Label
		}
		if d.UnitNumber != nil {
			j.UnitNumber = *d.UnitNumber
		}
		for _, c := range devices {
			if c.GetVirtualDevice().Key != d.ControllerKey {
				continue
			}
			switch c.(type) {
			case *types.ParaVirtualSCSIController:
				j.Controller = "pvscsi"
			case *types.VirtualLsiLogicController:
				j.Controller = "lsilogic"
			case *types.VirtualLsiLogicSASController:
				j.Controller = "lsilogic-sas"
			case *types.VirtualBusLogicController:
				j.Controller = "buslogic"
			case *types.VirtualIDEController:
				j.Controller = "ide"
			case *types.VirtualAHCIController:
				j.Controller = "sata"
			case *types.VirtualNVMEController:
				j.Controller = "nvme"
			}
		}
		for p := b.Parent; p != nil; p = p.Parent {
			j.Parents = append(j.Parents, p.FileName)
		}
		list = append(list, j)
	}
	return list
}

func labFindVM(q url.Values) *VirtualMachine {
	if ref := q.Get("vm"); ref != "" {
		vm, _ := Map.Get(types.ManagedObjectReference{Type: "VirtualMachine", Value: ref}).(*VirtualMachine)
		return vm
	}
	name := q.Get("name")
	for _, e := range Map.All("VirtualMachine") {
		if vm := e.(*VirtualMachine); vm.Name == name {
			return vm
		}
	}
	return nil
}

func labJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func labServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fail := func(status int, format string, a ...interface{}) {
		labJSON(w, status, map[string]string{"error": fmt.Sprintf(format, a...)})
	}
	switch strings.TrimPrefix(r.URL.Path, "/lab/") {
	case "paging":
		// GET /lab/paging[?reset=1]: how clients used PropertyCollector pages (zz_vaultline_paging.go).
		labJSON(w, http.StatusOK, labPagingReport(q.Get("reset") == "1"))
	case "quiesce-fail":
		vm := labFindVM(q)
		if vm == nil {
			fail(http.StatusNotFound, "no such VM")
			return
		}
		labSetQuiesceFail(vm.Self.Value, q.Get("fail") == "1")
		labJSON(w, http.StatusOK, map[string]bool{"fail": q.Get("fail") == "1"})
	case "datastore-host":
		// GET /lab/datastore-host?ds=<name>&host=<moref>&listed=0|1: take a host out of (or back into) the
		// datastore's own host list while the host keeps listing the datastore, as a vCenter whose views lag
		// (and another simulator) shows it. The files stay where they are.
		var ds *Datastore
		for _, e := range Map.All("Datastore") {
			if d := e.(*Datastore); d.Name == q.Get("ds") {
				ds = d
			}
		}
		host, _ := Map.Get(types.ManagedObjectReference{Type: "HostSystem", Value: q.Get("host")}).(*HostSystem)
		if ds == nil || host == nil {
			fail(404, "no such datastore or host")
			return
		}
		listed := 0
		Map.WithLock(ds, func() {
			var kept []types.DatastoreHostMount
			var mount *types.DatastoreHostMount
			for i := range ds.Host {
				if ds.Host[i].Key.Value == host.Self.Value {
					mount = &ds.Host[i]
					continue
				}
				kept = append(kept, ds.Host[i])
			}
			if q.Get("listed") == "1" {
				if mount == nil {
					mount = &types.DatastoreHostMount{Key: host.Self, MountInfo: types.HostMountInfo{AccessMode: string(types.HostMountModeReadWrite), Mounted: types.NewBool(true), Accessible: types.NewBool(true)}}
				}
				kept = append(kept, *mount)
			}
			ds.Host = kept
			listed = len(kept)
		})
		labJSON(w, 200, map[string]int{"hosts": listed})
	case "inventory":
		out := map[string]interface{}{}
		for _, e := range Map.All("Datacenter") {
			dc := e.(*Datacenter)
			out["datacenter"] = dc.Name
			out["vmFolder"] = dc.VmFolder.Value
		}
		var hosts []string
		for _, e := range Map.All("HostSystem") {
			hosts = append(hosts, e.(*HostSystem).Self.Value)
		}
		sort.Strings(hosts)
		out["hosts"] = hosts
		for _, e := range Map.All("ClusterComputeResource") {
			c := e.(*ClusterComputeResource)
			out["cluster"] = c.Self.Value
			out["clusterName"] = c.Name
			out["resourcePool"] = c.ResourcePool.Value
		}
		if _, ok := out["resourcePool"]; !ok {
			// A standalone ESXi host: its ComputeResource's root pool.
			for _, e := range Map.All("ComputeResource") {
				out["resourcePool"] = e.(*mo.ComputeResource).ResourcePool.Value
			}
		}
		dss := map[string]string{}
		for _, e := range Map.All("Datastore") {
			ds := e.(*Datastore)
			dss[ds.Name] = ds.Self.Value
		}
		out["datastores"] = dss
		var nets []string
		for _, t := range []string{"Network", "DistributedVirtualPortgroup"} {
			for _, e := range Map.All(t) {
				nets = append(nets, e.(mo.Entity).Entity().Name)
			}
		}
		sort.Strings(nets)
		out["networks"] = nets
		labJSON(w, 200, out)
	case "vm":
		vm := labFindVM(q)
		if vm == nil {
			fail(404, "vm not found")
			return
		}
		var out map[string]interface{}
		Map.WithLock(vm, func() {
			out = map[string]interface{}{
				"name": vm.Name, "moref": vm.Self.Value, "biosUuid": vm.Config.Uuid,
				"instanceUuid": vm.Config.InstanceUuid, "powerState": vm.Runtime.PowerState,
				"cbt": labCBTEnabled(vm), "disks": labDisksJSON(vm.Config.Hardware.Device),
				"vmPathName": vm.Config.Files.VmPathName,
			}
		})
		labJSON(w, 200, out)
	case "snapshot":
		s, ok := Map.Get(types.ManagedObjectReference{Type: "VirtualMachineSnapshot", Value: q.Get("snapshot")}).(*VirtualMachineSnapshot)
		if !ok {
			fail(404, "snapshot not found")
			return
		}
		labJSON(w, 200, map[string]interface{}{"moref": s.Self.Value, "vm": s.Vm.Value, "disks": labDisksJSON(s.Config.Hardware.Device)})
	case "guest-write":
		// POST /lab/guest-write?vm=<moref>&key=<deviceKey>&offset=<n>, body = the bytes
		if r.Method != http.MethodPost {
			fail(405, "POST only")
			return
		}
		data, err := ioutil.ReadAll(r.Body)
		if err != nil {
			fail(400, "%s", err)
			return
		}
		vm := labFindVM(q)
		if vm == nil {
			fail(404, "vm not found")
			return
		}
		key, _ := strconv.Atoi(q.Get("key"))
		off, err := strconv.ParseInt(q.Get("offset"), 10, 64)
		if err != nil || off < 0 {
			fail(400, "bad offset")
			return
		}
		status, msg := 200, ""
		Map.WithLock(vm, func() {
			status, msg = labGuestWrite(vm, int32(key), off, data)
		})
		if status != 200 {
			fail(status, "%s", msg)
			return
		}
		labJSON(w, 200, map[string]interface{}{"written": len(data)})
	case "extents":
		// GET /lab/extents?path=<file under a datastore>&length=N: data extents (SEEK_DATA/SEEK_HOLE)
		file := path.Clean(q.Get("path"))
		inside := false
		for _, e := range Map.All("Datastore") {
			if u := e.(*Datastore).Info.GetDatastoreInfo().Url; strings.HasPrefix(file, u+"/") {
				inside = true
			}
		}
		length, err := strconv.ParseInt(q.Get("length"), 10, 64)
		if !inside || err != nil {
			fail(400, "path must be a file on a lab datastore, with a length")
			return
		}
		ext, err := labAllocated(file, length)
		if err != nil {
			fail(500, "%s", err)
			return
		}
		out := make([][2]int64, 0, len(ext))
		for _, e := range ext {
			out = append(out, [2]int64{e.off, e.len})
		}
		labJSON(w, 200, out)
	case "direct-host":
		// POST /lab/direct-host?host=<address>&answers=<n>: the host answers n more requests, then 503 (-1: all)
		n, err := strconv.Atoi(q.Get("answers"))
		if err != nil || !LabDirectHostAnswers(q.Get("host"), n) {
			fail(400, "no direct host "+q.Get("host")+" or a bad answers count")
			return
		}
		labJSON(w, 200, map[string]bool{"ok": true})
	case "sync":
		// flush a file and its filesystem: POST /lab/sync?path=...
		labSyncFS(q.Get("path"), true)
		labJSON(w, 200, map[string]bool{"ok": true})
	default:
		fail(404, "unknown lab endpoint")
	}
}

// labGuestWrite writes into the VM's CURRENT backing file and records the
// write in the chain's change log when CBT is on. The VM lock is held.
func labGuestWrite(vm *VirtualMachine, key int32, off int64, data []byte) (int, string) {
	for _, d := range labDisks(vm.Config.Hardware.Device) {
		if d.Key != key {
			continue
		}
		if off+int64(len(data)) > getDiskSize(d) {
			return 400, "write beyond the end of the disk"
		}
		b := labBacking(d)
		desc, err := labLocalPath(b.FileName)
		if err != nil {
			return 500, err.Error()
		}
		f, err := os.OpenFile(labFlat(desc), os.O_WRONLY, 0)
		if err != nil {
			return 500, err.Error()
		}
		_, err = f.WriteAt(data, off)
		cerr := f.Close()
		if err == nil {
			err = cerr
		}
		if err != nil {
			return 500, err.Error()
		}
		if labIsLink(desc) && len(data) > 0 {
			// A snapshot link: its delta holds what was written while it is the VM's disk.
			if err := labRecordLinkWrite(desc, off, int64(len(data))); err != nil {
				return 500, err.Error()
			}
			if err := labMaterialize(desc, getDiskSize(d)); err != nil {
				return 500, err.Error()
			}
		}
		if labCBTEnabled(vm) && len(data) > 0 {
			labMu.Lock()
			c, err := labLoadCtk(b, true)
			if err == nil {
				err = c.record(off, int64(len(data)))
			}
			labMu.Unlock()
			if err != nil {
				return 500, err.Error()
			}
		}
		return 200, ""
	}
	return 404, fmt.Sprintf("no disk with key %d on %s (%s)", key, vm.Name, path.Base(vm.Config.Files.VmPathName))
}
