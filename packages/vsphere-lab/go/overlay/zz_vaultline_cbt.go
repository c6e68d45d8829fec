// Vaultline lab extension: Changed Block Tracking.
//
// Each disk chain (a base disk and its snapshot deltas) has one change log,
// "<base>-ctk.log" next to the base descriptor, like ESXi's -ctk.vmdk. Its
// first line is "# vaultline-ctk <uuid>"; every guest write recorded while CBT
// is enabled appends "<offset> <length>". A changeId is
// "52 xx xx xx xx xx xx xx-xx xx xx xx xx xx xx xx/<N>": the chain's uuid and
// the number of log entries at the moment the changeId was issued (snapshot
// creation). QueryChangedDiskAreas(snapshot S, changeId .../M) returns the
// entries M+1..N(S), i.e. exactly what was written between the snapshot that
// issued the changeId and S. Turning CBT on (false -> true) starts a new log
// with a new uuid, so older changeIds become invalid, as on ESXi.

package simulator

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type labExtent struct{ off, len int64 }

type labCtk struct {
	path    string
	id      string
	entries []labExtent
}

var labCtks = map[string]*labCtk{} // by log path

// labChainRoot returns the base (oldest) backing of a disk chain.
func labChainRoot(b *types.VirtualDiskFlatVer2BackingInfo) *types.VirtualDiskFlatVer2BackingInfo {
	for b.Parent != nil {
		b = b.Parent
	}
	return b
}

func labCtkPath(b *types.VirtualDiskFlatVer2BackingInfo) (string, error) {
	desc, err := labLocalPath(labChainRoot(b).FileName)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(desc, ".vmdk") + "-ctk.log", nil
}

// labLoadCtk returns the chain's log (creating it when create is set). labMu must be held.
func labLoadCtk(b *types.VirtualDiskFlatVer2BackingInfo, create bool) (*labCtk, error) {
	p, err := labCtkPath(b)
	if err != nil {
		return nil, err
	}
	if c := labCtks[p]; c != nil {
		return c, nil
	}
	f, err := os.Open(p)
	if err != nil {
		if !create {
			return nil, err
		}
		return labResetCtk(p)
	}
	defer f.Close()
	c := &labCtk{path: p}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# vaultline-ctk ") {
			c.id = strings.TrimPrefix(line, "# vaultline-ctk ")
			continue
		}
		var e labExtent
		if _, err := fmt.Sscanf(line, "%d %d", &e.off, &e.len); err == nil {
			c.entries = append(c.entries, e)
		}
	}
	if c.id == "" {
		return labResetCtk(p)
	}
	labCtks[p] = c
	return c, nil
}

func labResetCtk(p string) (*labCtk, error) {
	c := &labCtk{path: p, id: uuid.New().String()}
	if err := os.WriteFile(p, []byte("# vaultline-ctk "+c.id+"\n"), 0600); err != nil {
		return nil, err
	}
	labCtks[p] = c
	return c, nil
}

func (c *labCtk) record(off, n int64) error {
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND, 0600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%d %d\n", off, n); err != nil {
		return err
	}
	c.entries = append(c.entries, labExtent{off, n})
	return nil
}

// changeID renders the vSphere-looking changeId for the current log position.
func (c *labCtk) changeID() string {
	h := strings.ReplaceAll(c.id, "-", "")
	var parts []string
	for i := 0; i+2 <= len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	parts[0] = "52"
	return strings.Join(parts[:8], " ") + "-" + strings.Join(parts[8:], " ") + "/" + strconv.Itoa(len(c.entries))
}

func (c *labCtk) parseChangeID(id string) (int, bool) {
	i := strings.LastIndex(id, "/")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 0 {
		return 0, false
	}
	want := c.changeID()
	if id[:i] != want[:strings.LastIndex(want, "/")] {
		return 0, false
	}
	return n, true
}

func labCBTEnabled(vm *VirtualMachine) bool {
	return vm.Config != nil && vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
}

// labSyncCBT starts fresh change logs when CBT goes from off to on.
func labSyncCBT(vm *VirtualMachine) {
	labMu.Lock()
	defer labMu.Unlock()
	on := labCBTEnabled(vm)
	if on && !labCBTSeen[vm.Self] {
		for _, disk := range labDisks(vm.Config.Hardware.Device) {
			if p, err := labCtkPath(labBacking(disk)); err == nil {
				_, _ = labResetCtk(p)
			}
		}
	}
	labCBTSeen[vm.Self] = on
}

// labAllocated lists the data extents of a sparse file (SEEK_DATA/SEEK_HOLE).
func labAllocated(file string, limit int64) ([]labExtent, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const seekData, seekHole = 3, 4
	var out []labExtent
	var off int64
	for off < limit {
		start, err := f.Seek(off, seekData)
		if err != nil { // ENXIO: no data after off
			break
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			return nil, err
		}
		if end > limit {
			end = limit
		}
		if start >= end {
			break
		}
		out = append(out, labExtent{start, end - start})
		off = end
	}
	return out, nil
}

// labAlign rounds extents out to the block size, sorts, merges and clips to [from, limit).
func labAlign(in []labExtent, block, from, limit int64) []labExtent {
	var tmp []labExtent
	for _, e := range in {
		if e.len <= 0 {
			continue
		}
		s := e.off / block * block
		end := (e.off + e.len + block - 1) / block * block
		if s < from {
			s = from
		}
		if end > limit {
			end = limit
		}
		if s < end {
			tmp = append(tmp, labExtent{s, end - s})
		}
	}
	sort.Slice(tmp, func(i, j int) bool { return tmp[i].off < tmp[j].off })
	var out []labExtent
	for _, e := range tmp {
		if n := len(out); n > 0 && out[n-1].off+out[n-1].len >= e.off {
			if end := e.off + e.len; end > out[n-1].off+out[n-1].len {
				out[n-1].len = end - out[n-1].off
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// QueryChangedDiskAreas implements the vSphere method on the lab's change logs.
func (vm *VirtualMachine) QueryChangedDiskAreas(ctx *Context, req *types.QueryChangedDiskAreas) soap.HasFault {
	body := new(methods.QueryChangedDiskAreasBody)
	fail := func(msg string, f types.BaseMethodFault) soap.HasFault {
		body.Fault_ = Fault(msg, f)
		return body
	}
	if !labCBTEnabled(vm) {
		return fail("changed block tracking is not enabled on "+vm.Name, &types.NotSupported{})
	}
	devices := vm.Config.Hardware.Device
	current := true
	if req.Snapshot != nil {
		s, ok := Map.Get(*req.Snapshot).(*VirtualMachineSnapshot)
		if !ok || s.Vm != vm.Self {
			return fail("snapshot not found", &types.ManagedObjectNotFound{Obj: *req.Snapshot})
		}
		devices = s.Config.Hardware.Device
		current = false
	}
	var disk *types.VirtualDisk
	for _, d := range labDisks(devices) {
		if d.Key == req.DeviceKey {
			disk = d
		}
	}
	if disk == nil {
		return fail(fmt.Sprintf("no disk with key %d", req.DeviceKey), &types.InvalidArgument{InvalidProperty: "deviceKey"})
	}
	b := labBacking(disk)
	capacity := getDiskSize(disk)
	if req.StartOffset < 0 || req.StartOffset >= capacity {
		return fail("startOffset out of range", &types.InvalidArgument{InvalidProperty: "startOffset"})
	}

	var raw []labExtent
	if req.ChangeId == "*" {
		if !labThin(b) {
			raw = []labExtent{{0, capacity}} // thick disks are fully allocated, as on VMFS
		} else {
			desc, err := labLocalPath(b.FileName)
			if err == nil {
				raw, err = labAllocated(labFlat(desc), capacity)
			}
			if err != nil {
				return fail(err.Error(), &types.FileFault{File: b.FileName})
			}
		}
	} else {
		labMu.Lock()
		c, err := labLoadCtk(b, false)
		var from, to int
		ok := err == nil
		if ok {
			from, ok = c.parseChangeID(req.ChangeId)
		}
		if ok {
			to = len(c.entries)
			if !current {
				to, ok = c.parseChangeID(b.ChangeId)
			}
		}
		if ok && from > to {
			ok = false
		}
		if ok {
			raw = append(raw, c.entries[from:to]...)
		}
		labMu.Unlock()
		if !ok {
			return fail("invalid changeId "+req.ChangeId, &types.InvalidArgument{InvalidProperty: "changeId"})
		}
	}

	areas := labAlign(raw, LabConfig.CBTBlockSize, req.StartOffset, capacity)
	info := types.DiskChangeInfo{StartOffset: req.StartOffset, Length: capacity - req.StartOffset}
	if max := LabConfig.CBTMaxAreas; max > 0 && len(areas) > max {
		areas = areas[:max]
		last := areas[max-1]
		info.Length = last.off + last.len - req.StartOffset
	}
	for _, a := range areas {
		info.ChangedArea = append(info.ChangedArea, types.DiskChangeExtent{Start: a.off, Length: a.len})
	}
	body.Res = &types.QueryChangedDiskAreasResponse{Returnval: info}
	return body
}
