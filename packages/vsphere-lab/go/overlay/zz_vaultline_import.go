// Vaultline lab extension: ImportVApp lease uploads land disks thin.
//
// Stock vcsim answers ResourcePool.ImportVApp with a VM created from the
// import spec's configSpec and an HttpNfcLease whose info.deviceUrl[] holds
// one https://*/nfc/<lease>/<file> per file-backed device (disks in device
// order, key "/<vm>/disk:N"); its /nfc/ handler then throws every uploaded
// byte away. vSphere instead takes a streamOptimized VMDK on a disk's URL and
// turns it into the disk: on VMFS a thin disk gets blocks only where the
// stream carried data.
//
// Here an upload (PUT or POST) to a disk's /nfc/ URL of a live lease whose
// body starts with the sparse magic "KDMV" is read as a streamOptimized VMDK
// (header, then markers: a grain marker {lba, size} + zlib data, or a
// metadata marker GT/GD/FOOTER/EOS followed by that many sectors; a stream
// whose header holds the real grain directory offset, as qemu-img writes
// them, may end after its last grain without an EOS marker) and written
// into the disk's flat extent (<disk>-flat.vmdk next to the descriptor the
// lab keeps, as for every lab disk): the flat file is emptied to a sparse
// file of the disk's capacity and only grains present in the stream that are
// not all zeros are written, so everything else stays a hole. Any other body
// (a raw upload, an ISO) goes to the stock handler as before. A malformed
// stream is answered 400 with what was wrong (after the rest of the body is
// read, so the client sees the answer); the disk then holds what was written
// up to there.
//
// HttpNfcLeaseAbort ends the lease (later uploads 404) and leaves the
// imported VM in place: the client destroys it, as after any failed restore.

package simulator

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/vmware/govmomi/vim25/types"
)

// labImportTarget finds the disk behind an /nfc/ upload URL of a live import
// lease: the flat extent to write and the disk's capacity ("" when the URL is
// not a disk of such a lease).
func labImportTarget(r *http.Request) (flat string, capacity int64, name string) {
	p := strings.Split(strings.TrimPrefix(r.URL.Path, nfcPrefix), "/")
	if len(p) != 2 {
		return "", 0, ""
	}
	l, ok := nfcLease.Load(types.ManagedObjectReference{Type: "HttpNfcLease", Value: p[0]})
	if !ok {
		return "", 0, ""
	}
	lease := l.(*HttpNfcLease)
	file, ok := lease.files[p[1]]
	if !ok || lease.Info == nil || lease.Info.Entity.Type != "VirtualMachine" {
		return "", 0, ""
	}
	vm, ok := Map.Get(lease.Info.Entity).(*VirtualMachine)
	if !ok {
		return "", 0, ""
	}
	Map.WithLock(vm, func() {
		if vm.Config == nil {
			return
		}
		for _, d := range labDisks(vm.Config.Hardware.Device) {
			desc, err := labLocalPath(labBacking(d).FileName)
			if err == nil && desc == file {
				flat, capacity, name = labFlat(desc), getDiskSize(d), p[1]
			}
		}
	})
	return flat, capacity, name
}

// labImportUpload handles a streamOptimized upload to an import lease's disk;
// it returns false (having consumed nothing) for any other request.
func labImportUpload(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, nfcPrefix) || (r.Method != http.MethodPut && r.Method != http.MethodPost) {
		return false
	}
	flat, capacity, name := labImportTarget(r)
	if flat == "" {
		return false
	}
	body := bufio.NewReaderSize(r.Body, 1<<20)
	magic, _ := body.Peek(4)
	if string(magic) != "KDMV" {
		// Not a VMDK: the stock handler (which keeps nothing) answers, with the body intact.
		r.Body = ioutil.NopCloser(body)
		return false
	}
	stats, err := labWriteStreamOptimized(body, flat, capacity)
	if err != nil {
		log.Printf("lab: import %s -> %s: %s", name, flat, err)
		// Read the rest, so the client gets this answer rather than a reset connection.
		_, _ = io.Copy(ioutil.Discard, body)
		http.Error(w, fmt.Sprintf("streamOptimized upload of %s: %s", name, err), http.StatusBadRequest)
		return true
	}
	labSyncFS(flat, false)
	log.Printf("lab: import %s -> %s: %d grains (%d bytes) written, %d zero grains skipped, capacity %d", name, flat, stats.grains, stats.bytes, stats.zeroGrains, capacity)
	w.WriteHeader(http.StatusOK)
	return true
}

type labImportStats struct {
	grains, zeroGrains int
	bytes              int64
}

// labWriteStreamOptimized reads a streamOptimized VMDK from in and writes its
// data grains into flat, recreated as a sparse file of `capacity` bytes.
func labWriteStreamOptimized(in io.Reader, flat string, capacity int64) (labImportStats, error) {
	var st labImportStats
	hdr := make([]byte, 512)
	if _, err := io.ReadFull(in, hdr); err != nil {
		return st, fmt.Errorf("header: %v", err)
	}
	if string(hdr[0:4]) != "KDMV" {
		return st, fmt.Errorf("not a sparse VMDK (magic %q)", hdr[0:4])
	}
	le := binary.LittleEndian
	flags := le.Uint32(hdr[8:])
	sectors := int64(le.Uint64(hdr[12:]))
	grainSectors := int64(le.Uint64(hdr[20:]))
	overHead := int64(le.Uint64(hdr[64:]))
	// VMware's streams keep the grain directory at the end (GD_AT_END) and close with an end-of-stream
	// marker; qemu-img's keep it after the descriptor and simply end after the last grain.
	gdAtEnd := le.Uint64(hdr[56:]) == ^uint64(0)
	compress := le.Uint16(hdr[77:])
	if flags&(1<<16) == 0 || flags&(1<<17) == 0 || compress != 1 {
		return st, fmt.Errorf("not streamOptimized (flags %#x, compression %d): compressed grains with markers expected", flags, compress)
	}
	if grainSectors <= 0 || grainSectors > 1<<16 || grainSectors&(grainSectors-1) != 0 {
		return st, fmt.Errorf("bad grain size %d sectors", grainSectors)
	}
	if sectors*512 > capacity {
		return st, fmt.Errorf("the stream's capacity (%d bytes) exceeds the disk's (%d bytes)", sectors*512, capacity)
	}
	if overHead < 1 {
		return st, fmt.Errorf("bad overHead %d", overHead)
	}
	// Skip the embedded descriptor and padding up to the first grain.
	if _, err := io.CopyN(ioutil.Discard, in, (overHead-1)*512); err != nil {
		return st, fmt.Errorf("descriptor: %v", err)
	}
	pos := overHead * 512

	// The disk starts as a hole everywhere, as a new thin disk on VMFS.
	f, err := os.OpenFile(flat, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0600)
	if err != nil {
		return st, err
	}
	defer f.Close()
	if err := f.Truncate(capacity); err != nil {
		return st, err
	}

	grainBytes := grainSectors * 512
	grain := make([]byte, grainBytes)
	zero := make([]byte, grainBytes)
	var packed []byte
	var zr io.ReadCloser
	head := make([]byte, 12)
	for {
		if _, err := io.ReadFull(in, head); err != nil {
			if err == io.EOF && !gdAtEnd {
				return st, nil
			}
			return st, fmt.Errorf("marker at byte %d: %v (no end-of-stream marker)", pos, err)
		}
		val := le.Uint64(head[0:])
		size := int64(le.Uint32(head[8:]))
		if size == 0 {
			// A metadata marker: the rest of its sector holds the type; `val` sectors of metadata follow.
			rest := make([]byte, 500)
			if _, err := io.ReadFull(in, rest); err != nil {
				return st, fmt.Errorf("metadata marker at byte %d: %v", pos, err)
			}
			kind := le.Uint32(rest[0:])
			pos += 512
			switch kind {
			case 0: // end of stream
				return st, nil
			case 1, 2, 3: // grain table, grain directory, footer: the stream's own index, not needed to rebuild the disk
				if _, err := io.CopyN(ioutil.Discard, in, int64(val)*512); err != nil {
					return st, fmt.Errorf("metadata (type %d) at byte %d: %v", kind, pos, err)
				}
				pos += int64(val) * 512
			default:
				return st, fmt.Errorf("unknown marker type %d at byte %d", kind, pos-512)
			}
			continue
		}
		// A grain: {lba, size} then `size` bytes of zlib data, padded to a whole sector.
		lba := int64(val)
		if lba%grainSectors != 0 || lba >= sectors {
			return st, fmt.Errorf("grain at LBA %d (byte %d) is not a grain start inside the disk", lba, pos)
		}
		if size > 2*grainBytes+1024 {
			return st, fmt.Errorf("grain at LBA %d claims %d compressed bytes", lba, size)
		}
		total := 12 + size
		padded := (total + 511) / 512 * 512
		if int64(cap(packed)) < padded-12 {
			packed = make([]byte, padded-12)
		}
		buf := packed[:padded-12]
		if _, err := io.ReadFull(in, buf); err != nil {
			return st, fmt.Errorf("grain at LBA %d: %v", lba, err)
		}
		pos += padded
		src := bytes.NewReader(buf[:size])
		if zr == nil {
			zr, err = zlib.NewReader(src)
		} else {
			err = zr.(zlib.Resetter).Reset(src, nil)
		}
		if err != nil {
			return st, fmt.Errorf("grain at LBA %d: %v", lba, err)
		}
		n, err := io.ReadFull(zr, grain)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return st, fmt.Errorf("grain at LBA %d: inflate: %v", lba, err)
		}
		off := lba * 512
		data := grain[:n]
		if off+int64(len(data)) > capacity {
			data = data[:capacity-off]
		}
		if bytes.Equal(data, zero[:len(data)]) {
			st.zeroGrains++
			continue
		}
		if _, err := f.WriteAt(data, off); err != nil {
			return st, err
		}
		st.grains++
		st.bytes += int64(len(data))
	}
}
