// Vaultline lab extension, compiled INTO govmomi's package simulator with
// `go build -overlay` (see packages/vsphere-lab/README.md). Being inside the
// package lets it add SOAP methods to *VirtualMachine and use unexported
// helpers; it never edits the Debian sources.
//
// This file holds the configuration, the registry hook that reacts to
// inventory changes (disk files grown to capacity, disk UUIDs kept in real
// descriptors, CBT enable transitions, snapshot removal, HotAdd on the proxy
// VM), the lab datastores, and the lab-only HTTP endpoints under /lab/.
//
// Locking: SOAP methods run with the target object's registry lock held
// (Service.call). Registry hooks run inside those calls, so the hooks below
// never take a VM lock themselves; labMu only guards the lab's own maps.

package simulator

import (
	"crypto/rand"
	"fmt"
	"io/ioutil"
	"log"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// LabConfig is set by the lab main before the server starts.
var LabConfig = struct {
	ByIDDir      string // where HotAdd links wwn-0x<uuid> -> /dev/loopN are made ("" = HotAdd emulation off)
	ProxyVM      string // name of the appliance's own VM
	CBTMaxAreas  int    // max changedArea entries per QueryChangedDiskAreas reply
	CBTBlockSize int64  // CBT granularity
}{ProxyVM: "vaultline-proxy", CBTMaxAreas: 1000, CBTBlockSize: 64 * 1024}

func init() {
	if v, err := strconv.Atoi(os.Getenv("VCSIM_CBT_MAX_AREAS")); err == nil && v > 0 {
		LabConfig.CBTMaxAreas = v
	}
	if v, err := strconv.ParseInt(os.Getenv("VCSIM_CBT_BLOCK"), 10, 64); err == nil && v >= 512 {
		LabConfig.CBTBlockSize = v
	}

	RegisterEndpoint(func(s *Service, r *Registry) {
		r.AddHandler(labHandler{})
		s.HandleFunc("/lab/", labServeHTTP)
		s.HandleFunc("/lab-nfc/", labServeNFC)
	})
}

var (
	labMu      sync.Mutex
	labCBTSeen = map[types.ManagedObjectReference]bool{} // last seen config.changeTrackingEnabled per VM
)

// labHandler receives registry callbacks for every object.
type labHandler struct{}

func (labHandler) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VaultlineLab", Value: "vaultline-lab"}
}

func (labHandler) PutObject(obj mo.Reference) {
	if snap, ok := obj.(*VirtualMachineSnapshot); ok {
		labOnSnapshotCreated(snap)
	}
}

func (labHandler) UpdateObject(obj mo.Reference, changes []types.PropertyChange) {
	ref := obj.Reference()
	if ref.Type != "VirtualMachine" {
		return
	}
	vm, ok := Map.Get(ref).(*VirtualMachine)
	if !ok || vm.Config == nil {
		return
	}
	for _, c := range changes {
		switch {
		case c.Name == "config.hardware.device":
			labSyncDisks(vm)
			labSyncCBT(vm)
			if vm.Name == LabConfig.ProxyVM {
				labSyncHotAdd(vm)
			}
		case c.Name == "snapshot" || strings.HasPrefix(c.Name, "snapshot."):
			labConsolidate(vm)
		}
	}
}

func (labHandler) RemoveObject(types.ManagedObjectReference) {}

// ---------------------------------------------------------------------------
// Disk files

var labDeltaRe = regexp.MustCompile(`^(.*?)(-\d{6})?\.vmdk$`)

// labLocalPath maps "[ds] dir/x.vmdk" to the local file path.
func labLocalPath(dsPath string) (string, error) {
	p, fault := parseDatastorePath(dsPath)
	if fault != nil {
		return "", fmt.Errorf("invalid datastore path %q", dsPath)
	}
	for _, e := range Map.All("Datastore") {
		ds := e.(*Datastore)
		if ds.Name == p.Datastore {
			return path.Join(ds.Info.GetDatastoreInfo().Url, p.Path), nil
		}
	}
	return "", fmt.Errorf("datastore %q not found", p.Datastore)
}

func labFlat(desc string) string { return strings.TrimSuffix(desc, ".vmdk") + "-flat.vmdk" }

func labDisks(devices []types.BaseVirtualDevice) []*types.VirtualDisk {
	var out []*types.VirtualDisk
	for _, d := range devices {
		if disk, ok := d.(*types.VirtualDisk); ok {
			if _, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
				out = append(out, disk)
			}
		}
	}
	return out
}

func labBacking(d *types.VirtualDisk) *types.VirtualDiskFlatVer2BackingInfo {
	return d.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
}

func labCopyBacking(b *types.VirtualDiskFlatVer2BackingInfo) *types.VirtualDiskFlatVer2BackingInfo {
	if b == nil {
		return nil
	}
	c := *b
	c.Parent = labCopyBacking(b.Parent)
	return &c
}

func labCopyDisk(d *types.VirtualDisk) *types.VirtualDisk {
	c := *d
	if d.DeviceInfo != nil {
		di := *d.DeviceInfo.GetDescription()
		c.DeviceInfo = &di
	}
	c.Backing = labCopyBacking(labBacking(d))
	return &c
}

// labNewDiskUUID returns a VMware-style disk UUID ("6000C29x-...").
func labNewDiskUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := fmt.Sprintf("6000c29%x", b)[:32]
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

var labDdbUUIDRe = regexp.MustCompile(`(?m)^ddb\.uuid\s*=\s*"([0-9a-fA-F ]+)-([0-9a-fA-F ]+)"`)

// labReadDescriptorUUID reads ddb.uuid ("60 00 C2 9a ...-...") from a descriptor.
func labReadDescriptorUUID(desc string) string {
	b, err := ioutil.ReadFile(desc)
	if err != nil {
		return ""
	}
	m := labDdbUUIDRe.FindSubmatch(b)
	if m == nil {
		return ""
	}
	h := strings.ToLower(strings.ReplaceAll(string(m[1])+string(m[2]), " ", ""))
	if len(h) != 32 {
		return ""
	}
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

func labUUIDHex(u string) string { return strings.ToLower(strings.ReplaceAll(u, "-", "")) }

// labWriteDescriptor writes a monolithicFlat-style descriptor next to the flat extent.
func labWriteDescriptor(desc string, capacity int64, uuid string, parent string, thin bool) {
	if parent != "" && labIsLink(desc) {
		// A snapshot link: ESXi's delta descriptor, and its delta data file rebuilt.
		_ = ioutil.WriteFile(desc, []byte(labLinkDescriptor(desc, capacity, uuid, parent, thin)), 0600)
		if err := labMaterialize(desc, capacity); err != nil {
			log.Printf("lab: delta of %s: %s", desc, err)
		}
		return
	}
	ddbUUID := labDdbUUID(uuid)
	createType := "vmfs"
	parentHint := ""
	if parent != "" {
		parentHint = fmt.Sprintf("parentFileNameHint=%q\n", parent)
	}
	thinFlag := "0"
	if thin {
		thinFlag = "1"
	}
	extent := fmt.Sprintf("RW %d VMFS %q", capacity/512, path.Base(labFlat(desc)))
	// On a vSAN or vVol datastore the descriptor names the disk's object, not a file.
	if t, e := labObjectExtent(desc, capacity, uuid); e != "" {
		createType, extent = t, e
	}
	text := fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
createType=%q
%s
# Extent description
%s

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.thinProvisioned = %q
ddb.uuid = %q
ddb.virtualHWVersion = "13"
`, createType, parentHint, extent, thinFlag, ddbUUID)
	_ = ioutil.WriteFile(desc, []byte(text), 0600)
}

func labThin(b *types.VirtualDiskFlatVer2BackingInfo) bool {
	return b.ThinProvisioned == nil || *b.ThinProvisioned
}

// labSyncDisks grows every disk's -flat.vmdk to its capacity (sparse), and
// keeps the disk UUID in the descriptor (ddb.uuid) so a disk file attached to
// another VM (HotAdd) reports the same backing.uuid.
func labSyncDisks(vm *VirtualMachine) {
	for _, disk := range labDisks(vm.Config.Hardware.Device) {
		b := labBacking(disk)
		desc, err := labLocalPath(b.FileName)
		if err != nil {
			continue
		}
		flat := labFlat(desc)
		st, err := os.Stat(flat)
		if err != nil {
			continue
		}
		capacity := getDiskSize(disk)
		if capacity == 0 {
			// e.g. an existing disk attached without a capacity: report the file's size
			disk.CapacityInBytes = st.Size()
			disk.CapacityInKB = st.Size() / 1024
			capacity = st.Size()
		}
		if st.Size() < capacity {
			if err := os.Truncate(flat, capacity); err != nil {
				log.Printf("lab: grow %s: %s", flat, err)
			}
		}
		fromDesc := labReadDescriptorUUID(desc)
		if b.Uuid == "" {
			b.Uuid = fromDesc
			if b.Uuid == "" {
				b.Uuid = labNewDiskUUID()
			}
		}
		if fromDesc == "" {
			parent := ""
			if b.Parent != nil {
				parent = path.Base(b.Parent.FileName)
			}
			labWriteDescriptor(desc, capacity, b.Uuid, parent, labThin(b))
		}
	}
}

// labOnSAN tells whether a "[ds] path" lives on a SAN (VMFS-reported) datastore.
func labOnSAN(dsPath string) bool {
	p, fault := parseDatastorePath(dsPath)
	if fault != nil {
		return false
	}
	for _, e := range Map.All("Datastore") {
		if ds := e.(*Datastore); ds.Name == p.Datastore {
			_, ok := ds.Info.(*types.VmfsDatastoreInfo)
			return ok
		}
	}
	return false
}

// labSyncFS flushes a file and, with wholeFS, its whole filesystem (so
// block-level readers of a SAN LUN over the same filesystem image see the data).
func labSyncFS(file string, wholeFS bool) {
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	_ = f.Sync()
	if !wholeFS {
		return
	}
	// syncfs(2); the syscall package has no constant for it
	switch runtime.GOARCH {
	case "amd64":
		_, _, _ = syscall.Syscall(306, f.Fd(), 0, 0)
	case "arm64":
		_, _, _ = syscall.Syscall(267, f.Fd(), 0, 0)
	default:
		syscall.Sync()
	}
}

// ---------------------------------------------------------------------------
// HotAdd emulation: a disk attached to the proxy VM becomes a loop device over
// its flat file, linked as <ByIDDir>/wwn-0x<disk uuid>; removed when detached.
// The device is read-only unless the disk is attached in a persistent mode
// (persistent, independent_persistent: what a restore uses to write a new
// disk); independent_nonpersistent (what backups use) and nonpersistent stay
// read-only, as their writes would go to a throw-away redo log on ESXi.

type labAttachment struct {
	dev      string
	links    []string
	writable bool
}

// labHotAddWritable tells whether a disk attached in this mode may be written.
func labHotAddWritable(mode string) bool {
	return mode == string(types.VirtualDiskModePersistent) || mode == string(types.VirtualDiskModeIndependent_persistent)
}

var labAttached = map[string]*labAttachment{} // "key|fileName" -> attachment

func labRun(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

func labSyncHotAdd(vm *VirtualMachine) {
	if LabConfig.ByIDDir == "" {
		return
	}
	own := path.Dir(vm.Config.Files.VmPathName) // "[ds] proxy"
	labMu.Lock()
	defer labMu.Unlock()
	seen := map[string]bool{}
	for _, disk := range labDisks(vm.Config.Hardware.Device) {
		b := labBacking(disk)
		if path.Dir(b.FileName) == own {
			continue // the proxy's own system disk
		}
		id := fmt.Sprintf("%d|%s", disk.Key, b.FileName)
		seen[id] = true
		if labAttached[id] != nil {
			continue
		}
		desc, err := labLocalPath(b.FileName)
		if err != nil {
			continue
		}
		// A disk on a read-only mount (a readOnly NFS datastore) can only be read.
		writable := labHotAddWritable(b.DiskMode) && syscall.Access(labFlat(desc), 2 /* W_OK */) == nil
		args := []string{"-f", "--show"}
		if !writable {
			args = append(args, "-r")
		}
		dev, err := labRun("losetup", append(args, labFlat(desc))...)
		if err != nil {
			log.Printf("lab: hotadd: %s", err)
			continue
		}
		if writable {
			// A read-only flag left on this loop device by an earlier user outlives its detach.
			if _, err := labRun("blockdev", "--setrw", dev); err != nil {
				log.Printf("lab: hotadd: %s", err)
			}
		}
		// Linux names a VMware disk (disk.EnableUUID) both ways in /dev/disk/by-id.
		hex := labUUIDHex(b.Uuid)
		a := &labAttachment{dev: dev, writable: writable}
		for _, name := range []string{"wwn-0x" + hex, "scsi-3" + hex} {
			link := filepath.Join(LabConfig.ByIDDir, name)
			_ = os.Remove(link)
			if err := os.Symlink(dev, link); err != nil {
				log.Printf("lab: hotadd link: %s", err)
				continue
			}
			a.links = append(a.links, link)
		}
		labAttached[id] = a
		mode := "read-only"
		if writable {
			mode = "read-write"
		}
		log.Printf("lab: hotadd %s (%s) -> %s %s (%v)", b.FileName, b.DiskMode, dev, mode, a.links)
	}
	for id, a := range labAttached {
		if !seen[id] {
			labDetach(a)
			delete(labAttached, id)
		}
	}
}

func labDetach(a *labAttachment) {
	for _, link := range a.links {
		if target, err := os.Readlink(link); err == nil && target == a.dev {
			_ = os.Remove(link)
		}
	}
	if a.writable {
		// What a guest wrote reaches the flat file before the device goes.
		_, _ = labRun("blockdev", "--flushbufs", a.dev)
	}
	if _, err := labRun("losetup", "-d", a.dev); err != nil {
		log.Printf("lab: detach: %s", err)
	}
	// losetup -r leaves the device's read-only flag set after detach; clear it for the next user.
	_, _ = labRun("blockdev", "--setrw", a.dev)
	log.Printf("lab: hotremove %s", a.dev)
}

// LabShutdown detaches every loop device the lab made (called on SIGTERM).
func LabShutdown() {
	labMu.Lock()
	defer labMu.Unlock()
	for id, a := range labAttached {
		labDetach(a)
		delete(labAttached, id)
	}
	labNasShutdown()
}

// ---------------------------------------------------------------------------
// Datastores

// LabDatastore describes a datastore folder given on the command line.
type LabDatastore struct {
	Name string
	Path string
	NAA  string // when set, the datastore is reported as VMFS on this LUN
	// "vmfsSparse": a VMFS5-like datastore whose snapshot links are vmfsSparse (and whose VMFS is
	// reported as version 5); otherwise VMFS6-like, with seSparse links
	Delta string
	Type  string // "vsan" or "vvol": an object datastore (no flat files through /folder); "" = files
}

// LabCreateDatastores creates each datastore on the first host and mounts it
// on the others (one Datastore object shared by the cluster). A datastore with
// an NAA id is reported as VMFS whose single extent is that LUN.
func LabCreateDatastores(specs []LabDatastore) error {
	ctx := internalContext
	var hosts []*HostSystem
	for _, e := range Map.All("HostSystem") {
		hosts = append(hosts, e.(*HostSystem))
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Name < hosts[j].Name })
	if len(hosts) == 0 {
		return fmt.Errorf("no hosts in the model")
	}
	for _, spec := range specs {
		first := Map.Get(*hosts[0].ConfigManager.DatastoreSystem).(*HostDatastoreSystem)
		res := first.CreateLocalDatastore(ctx, &types.CreateLocalDatastore{This: first.Self, Name: spec.Name, Path: spec.Path})
		if f := res.Fault(); f != nil {
			return fmt.Errorf("datastore %s: %s", spec.Name, f.String)
		}
		dsRef := res.(*methods.CreateLocalDatastoreBody).Res.Returnval
		ds := Map.Get(dsRef).(*Datastore)
		for _, h := range hosts[1:] {
			dss := Map.Get(*h.ConfigManager.DatastoreSystem).(*HostDatastoreSystem)
			dss.Datastore = append(dss.Datastore, dsRef)
			h.Datastore = append(h.Datastore, dsRef)
			ds.Host = append(ds.Host, types.DatastoreHostMount{
				Key: h.Self,
				MountInfo: types.HostMountInfo{
					Path:       spec.Path,
					AccessMode: string(types.HostMountModeReadWrite),
					Mounted:    types.NewBool(true),
					Accessible: types.NewBool(true),
				},
			})
		}
		switch spec.Type {
		case "vsan":
			ds.Summary.Type = "vsan"
		case "vvol":
			ds.Summary.Type = "VVOL"
		case "":
		default:
			return fmt.Errorf("datastore %s: unknown type %q (vsan, vvol)", spec.Name, spec.Type)
		}
		switch spec.Delta {
		case "", "seSparse":
		case "vmfsSparse":
			labDeltaFormats[spec.Name] = "vmfsSparse"
		default:
			return fmt.Errorf("datastore %s: unknown delta format %q (seSparse, vmfsSparse)", spec.Name, spec.Delta)
		}
		if spec.NAA != "" && spec.Type != "" {
			return fmt.Errorf("datastore %s: a %s datastore has no LUN", spec.Name, spec.Type)
		}
		if spec.NAA != "" {
			vmfsMajor, vmfsVersion := int32(6), "6.82"
			if spec.Delta == "vmfsSparse" {
				vmfsMajor, vmfsVersion = 5, "5.81"
			}
			info := ds.Info.GetDatastoreInfo()
			vmfs := &types.VmfsDatastoreInfo{
				DatastoreInfo: *info,
				Vmfs: &types.HostVmfsVolume{
					HostFileSystemVolume: types.HostFileSystemVolume{Type: "VMFS", Name: spec.Name, Capacity: ds.Summary.Capacity},
					BlockSizeMb:          1,
					MaxBlocks:            63963136,
					MajorVersion:         vmfsMajor,
					Version:              vmfsVersion,
					Uuid:                 newUUID(spec.NAA),
					Extent:               []types.HostScsiDiskPartition{{DiskName: spec.NAA, Partition: 1}},
					Local:                types.NewBool(false),
					Ssd:                  types.NewBool(false),
				},
			}
			ds.Info = vmfs
			ds.Summary.Type = "VMFS"
			for _, h := range hosts {
				labAddScsiLun(h, spec.NAA, ds.Summary.Capacity)
			}
		}
	}
	return nil
}

// labAddScsiLun lists the SAN LUN in the host's config.storageDevice.scsiLun,
// as ESXi lists a VMFS datastore's backing disk.
func labAddScsiLun(h *HostSystem, naa string, capacity int64) {
	if h.Config == nil || h.Config.StorageDevice == nil {
		return
	}
	hex := strings.TrimPrefix(naa, "naa.")
	lun := &types.HostScsiDisk{
		ScsiLun: types.ScsiLun{
			HostDevice:       types.HostDevice{DeviceName: "/vmfs/devices/disks/" + naa, DeviceType: "disk"},
			Key:              "key-vim.host.ScsiDisk-02000000" + hex + "4c4142204c55",
			Uuid:             "02000000" + hex + "4c4142204c55",
			CanonicalName:    naa,
			DisplayName:      "Vaultline lab LUN (" + naa + ")",
			LunType:          "disk",
			Vendor:           "VAULTLN",
			Model:            "LAB LUN",
			OperationalState: []string{"ok"},
		},
		Capacity:   types.HostDiskDimensionsLba{BlockSize: 512, Block: capacity / 512},
		DevicePath: "/vmfs/devices/disks/" + naa,
		Ssd:        types.NewBool(false),
		LocalDisk:  types.NewBool(false),
	}
	h.Config.StorageDevice.ScsiLun = append(h.Config.StorageDevice.ScsiLun, lun)
}

// LabGiveHostsUUIDs gives every host a hardware UUID of its own (hardware.systemInfo.uuid and
// summary.hardware.uuid), as real hosts have; the simulator shares one between all of them.
func LabGiveHostsUUIDs(newUUID func() string) {
	for _, e := range Map.All("HostSystem") {
		h := e.(*HostSystem)
		id := newUUID()
		if h.Hardware != nil {
			hw := *h.Hardware
			hw.SystemInfo.Uuid = id
			h.Hardware = &hw
		}
		if h.Summary.Hardware != nil {
			shw := *h.Summary.Hardware
			shw.Uuid = id
			h.Summary.Hardware = &shw
		}
	}
}
