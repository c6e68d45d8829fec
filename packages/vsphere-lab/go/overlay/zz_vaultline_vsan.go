// Vaultline lab extension: vSAN-like and vVols-like datastores, and export
// leases that send disks as vSphere does (streamOptimized VMDK).
//
// On a real vSAN or vVol datastore a disk is an object, not a file: the
// namespace folder holds the VM's descriptor, whose extent names
// "vsan://<object uuid>" or "vvol://<container>/<vvol id>", and there is no
// "-flat.vmdk" to fetch through /folder. The lab keeps its data in a flat file
// as everywhere else (HotAdd, CBT and the guest writer use it) but hides it:
// /folder answers 404 to a GET or HEAD of "*-flat.vmdk" on such a datastore
// and refuses a PUT of one, and the descriptor names the object.
//
// An HttpNfcLease export (ExportVm, ExportSnapshot) serves each disk as one
// streamOptimized VMDK, built on the fly: sparse header, embedded descriptor,
// a marker and a deflated grain for every grain that holds data (zero grains
// are left out), then the grain tables, the grain directory, the footer and
// the end-of-stream marker. No Range, no length: the whole stream, in order.

package simulator

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"reflect"
	"strings"

	"github.com/vmware/govmomi/vim25/types"
)

// labDatastoreKind tells what kind of datastore a name is: "vsan", "vvol" or "" (files).
func labDatastoreKind(name string) string {
	for _, e := range Map.All("Datastore") {
		if ds := e.(*Datastore); ds.Name == name {
			switch ds.Summary.Type {
			case "vsan":
				return "vsan"
			case "VVOL":
				return "vvol"
			}
			return ""
		}
	}
	return ""
}

// labKindOfLocal tells the kind of the datastore a local file lives in.
func labKindOfLocal(local string) string {
	for _, e := range Map.All("Datastore") {
		ds := e.(*Datastore)
		root := strings.TrimSuffix(ds.Info.GetDatastoreInfo().Url, "/") + "/"
		if strings.HasPrefix(local, root) {
			return labDatastoreKind(ds.Name)
		}
	}
	return ""
}

// labObjectExtent is the extent line of a disk on an object datastore ("" on a file datastore).
func labObjectExtent(desc string, capacity int64, uuid string) (createType, extent string) {
	switch labKindOfLocal(desc) {
	case "vsan":
		return "vsanSparse", fmt.Sprintf("RW %d VSANSPARSE \"vsan://%s\"", capacity/512, labUUIDHex(uuid))
	case "vvol":
		return "vmfs", fmt.Sprintf("RW %d VMFS \"vvol://%s/rfc4122.%s\"", capacity/512, labUUIDHex(uuid)[:16], uuid)
	}
	return "", ""
}

// labFolderGuard answers /folder requests that an object datastore would not
// serve; it returns true when it answered.
func labFolderGuard(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/folder/") {
		return false
	}
	// The lab-private files of snapshot links (zz_vaultline_delta.go): ESXi has no such files.
	if labHiddenRe.MatchString(r.URL.Path) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			http.Error(w, "no such file", http.StatusNotFound)
		} else {
			http.Error(w, "not a file of this datastore", http.StatusForbidden)
		}
		return true
	}
	if !strings.HasSuffix(strings.ToLower(r.URL.Path), "-flat.vmdk") {
		return false
	}
	kind := labDatastoreKind(r.URL.Query().Get("dsName"))
	if kind == "" {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		http.Error(w, "no such file: disks on a "+kind+" datastore are objects, not files", http.StatusNotFound)
	default:
		http.Error(w, "disks on a "+kind+" datastore are objects: a flat extent cannot be uploaded", http.StatusForbidden)
	}
	return true
}

// labLeaseKey is the device key vSphere gives a disk in a lease:
// "/<vm>/<controller type><bus>:<unit>", e.g. "/vm-42/VirtualLsiLogicController0:1".
func labLeaseKey(vm string, devices []types.BaseVirtualDevice, disk *types.VirtualDisk) string {
	for _, d := range devices {
		if d.GetVirtualDevice().Key != disk.ControllerKey {
			continue
		}
		bus := int32(0)
		if c, ok := d.(types.BaseVirtualController); ok {
			bus = c.GetVirtualController().BusNumber
		}
		unit := int32(0)
		if disk.UnitNumber != nil {
			unit = *disk.UnitNumber
		}
		return fmt.Sprintf("/%s/%s%d:%d", vm, reflect.TypeOf(d).Elem().Name(), bus, unit)
	}
	return fmt.Sprintf("/%s/%d", vm, disk.Key)
}

const (
	labGrainSectors = 128 // 64 KiB grains
	labGTEntries    = 512 // entries per grain table
)

// labStreamOptimized writes the disk in flat (capacity bytes) as a streamOptimized VMDK.
func labStreamOptimized(out io.Writer, flat string, capacity int64, uuid string) error {
	w := bufio.NewWriterSize(out, 1<<20)
	f, err := os.Open(flat)
	if err != nil {
		return err
	}
	defer f.Close()
	extents, err := labAllocated(flat, capacity)
	if err != nil {
		return err
	}
	sectors := (capacity + 511) / 512
	grainBytes := int64(labGrainSectors * 512)
	grains := (sectors + labGrainSectors - 1) / labGrainSectors
	tables := (grains + labGTEntries - 1) / labGTEntries

	descriptor := fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\n# Extent description\nRW %d SPARSE \"%s\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.uuid = %q\nddb.virtualHWVersion = \"13\"\n", sectors, path.Base(flat), uuid)
	descSectors := (int64(len(descriptor)) + 511) / 512
	header := func(gdOffset uint64) []byte {
		h := make([]byte, 512)
		copy(h[0:4], "KDMV")
		binary.LittleEndian.PutUint32(h[4:], 3)
		binary.LittleEndian.PutUint32(h[8:], 1|1<<16|1<<17) // newline test, compressed grains, markers
		binary.LittleEndian.PutUint64(h[12:], uint64(sectors))
		binary.LittleEndian.PutUint64(h[20:], labGrainSectors)
		binary.LittleEndian.PutUint64(h[28:], 1) // descriptor at sector 1
		binary.LittleEndian.PutUint64(h[36:], uint64(descSectors))
		binary.LittleEndian.PutUint32(h[44:], labGTEntries)
		binary.LittleEndian.PutUint64(h[48:], 0) // no redundant directory
		binary.LittleEndian.PutUint64(h[56:], gdOffset)
		binary.LittleEndian.PutUint64(h[64:], uint64(1+descSectors)) // grains start after the descriptor
		h[72] = 0                                                    // clean
		h[73], h[74], h[75], h[76] = '\n', ' ', '\r', '\n'
		binary.LittleEndian.PutUint16(h[77:], 1) // deflate
		return h
	}
	pos := int64(0) // bytes written, always a multiple of 512 between records
	put := func(b []byte) error {
		n, err := w.Write(b)
		pos += int64(n)
		return err
	}
	pad := func() error {
		if r := pos % 512; r != 0 {
			return put(make([]byte, 512-r))
		}
		return nil
	}
	marker := func(sectorsFollowing uint64, kind uint32) error {
		m := make([]byte, 512)
		binary.LittleEndian.PutUint64(m[0:], sectorsFollowing)
		binary.LittleEndian.PutUint32(m[12:], kind)
		return put(m)
	}
	if err := put(header(^uint64(0))); err != nil { // directory at the end (GD_AT_END)
		return err
	}
	if err := put([]byte(descriptor)); err != nil {
		return err
	}
	if err := pad(); err != nil {
		return err
	}

	gt := make([]uint32, tables*labGTEntries) // sector of each grain's marker, 0 = absent
	buf := make([]byte, grainBytes)
	zero := make([]byte, grainBytes)
	var packed bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&packed, zlib.BestSpeed)
	next := int64(-1) // last grain written, to visit each grain once across extents
	for _, e := range extents {
		for g := e.off / grainBytes; g*grainBytes < e.off+e.len; g++ {
			if g <= next {
				continue
			}
			next = g
			n := grainBytes
			if rest := capacity - g*grainBytes; rest < n {
				n = rest
			}
			if _, err := f.ReadAt(buf[:n], g*grainBytes); err != nil && err != io.EOF {
				return err
			}
			if bytes.Equal(buf[:n], zero[:n]) {
				continue
			}
			packed.Reset()
			zw.Reset(&packed)
			if _, err := zw.Write(buf[:n]); err != nil {
				return err
			}
			if err := zw.Close(); err != nil {
				return err
			}
			gt[g] = uint32(pos / 512)
			head := make([]byte, 12)
			binary.LittleEndian.PutUint64(head[0:], uint64(g*labGrainSectors))
			binary.LittleEndian.PutUint32(head[8:], uint32(packed.Len()))
			if err := put(head); err != nil {
				return err
			}
			if err := put(packed.Bytes()); err != nil {
				return err
			}
			if err := pad(); err != nil {
				return err
			}
		}
	}

	gtSectors := uint64(labGTEntries * 4 / 512)
	gd := make([]uint32, tables)
	entry := make([]byte, 4)
	for t := int64(0); t < tables; t++ {
		if err := marker(gtSectors, 1); err != nil {
			return err
		}
		gd[t] = uint32(pos / 512)
		for _, s := range gt[t*labGTEntries : (t+1)*labGTEntries] {
			binary.LittleEndian.PutUint32(entry, s)
			if err := put(entry); err != nil {
				return err
			}
		}
	}
	gdSectors := uint64((tables*4 + 511) / 512)
	if err := marker(gdSectors, 2); err != nil {
		return err
	}
	gdOffset := uint64(pos / 512)
	for _, s := range gd {
		binary.LittleEndian.PutUint32(entry, s)
		if err := put(entry); err != nil {
			return err
		}
	}
	if err := pad(); err != nil {
		return err
	}
	if err := marker(1, 3); err != nil {
		return err
	}
	if err := put(header(gdOffset)); err != nil {
		return err
	}
	if err := marker(0, 0); err != nil {
		return err
	}
	return w.Flush()
}
