// Vaultline lab extension: snapshot links in ESXi's own formats.
//
// When a snapshot is taken, the VM's disk moves to a new link "<disk>-00000N.vmdk"
// whose descriptor is what ESXi writes for a snapshot delta: createType
// "seSparse" (VMFS6-like datastores, and any disk of 2 TiB or more) or
// "vmfsSparse" (VMFS5-like datastores), parentFileNameHint naming the parent,
// parentCID equal to the parent's CID, and one extent naming the delta data
// file "<disk>-00000N-sesparse.vmdk" or "-delta.vmdk". That data file is a real
// delta: it holds exactly the grains written while the link was the VM's
// current disk (4 KiB grains for seSparse, 512-byte grains for vmfsSparse),
// everything else falls through to the parent. It is rebuilt after every guest
// write to the link and when consolidation merges a child into it, so it is
// always what ESXi would hold.
//
// Behind the scenes the lab also keeps a complete image of every link
// ("<disk>-00000N-flat.vmdk", the file the guest writer, HotAdd, CBT and
// export leases use), plus the list of areas written to it
// (".<disk>-00000N-flat.vmdk.writes"). Those are lab-private: /folder answers
// 404 for them (and refuses a PUT), as ESXi has no such files; a reader that
// follows the descriptor (the network, Direct SAN from the LUN) sees only the
// chain.

package simulator

import (
	"bufio"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var labLinkRe = regexp.MustCompile(`-\d{6}\.vmdk$`)

// labIsLink tells whether a descriptor (local path or datastore path) names a snapshot link.
func labIsLink(desc string) bool { return labLinkRe.MatchString(desc) }

// labHiddenRe matches the lab-private files of links: their complete images and write lists.
var labHiddenRe = regexp.MustCompile(`(?i)(-\d{6}-flat\.vmdk|\.writes)$`)

// labCID is a link's content id: stable for its file (descriptors are rewritten at consolidation), never
// ffffffff; a base disk's is fffffffe.
func labCID(desc string) string {
	if !labIsLink(desc) {
		return "fffffffe"
	}
	sum := sha1.Sum([]byte(desc))
	c := fmt.Sprintf("%x", sum[:4])
	if c == "ffffffff" || c == "fffffffe" {
		c = "0000000f"
	}
	return c
}

// labLinkFormat is the delta format ESXi uses for a link of this disk on its datastore.
func labLinkFormat(desc string, capacity int64) string {
	if capacity >= 2<<40 {
		return "seSparse"
	}
	for _, e := range Map.All("Datastore") {
		ds := e.(*Datastore)
		root := strings.TrimSuffix(ds.Info.GetDatastoreInfo().Url, "/") + "/"
		if strings.HasPrefix(desc, root) {
			if labDeltaFormats[ds.Name] == "vmfsSparse" {
				return "vmfsSparse"
			}
			break
		}
	}
	return "seSparse"
}

// datastore name -> "vmfsSparse" for VMFS5-like datastores (default: seSparse, VMFS6-like)
var labDeltaFormats = map[string]string{}

func labDeltaDataName(desc, format string) string {
	base := strings.TrimSuffix(path.Base(desc), ".vmdk")
	if format == "vmfsSparse" {
		return base + "-delta.vmdk"
	}
	return base + "-sesparse.vmdk"
}

func labWritesFile(desc string) string {
	return path.Join(path.Dir(desc), "."+path.Base(labFlat(desc))+".writes")
}

// labLinkDescriptor is the text of a link's descriptor.
func labLinkDescriptor(desc string, capacity int64, uuid, parent string, thin bool) string {
	format := labLinkFormat(desc, capacity)
	kind, grain := "SESPARSE", "ddb.grain = \"8\"\n"
	if format == "vmfsSparse" {
		kind, grain = "VMFSSPARSE", ""
	}
	thinFlag := "0"
	if thin {
		thinFlag = "1"
	}
	cid := labCID(desc)
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=%s
parentCID=%s
isNativeSnapshot="no"
createType=%q
parentFileNameHint=%q
# Extent description
RW %d %s %q

# The Disk Data Base
#DDB

%sddb.longContentID = "%s%s"
ddb.thinProvisioned = %q
ddb.uuid = %q
`, cid, labCID(path.Join(path.Dir(desc), parent)), format, parent, capacity/512, kind, labDeltaDataName(desc, format), grain, strings.Repeat("0", 24), cid, thinFlag, labDdbUUID(uuid))
}

func labDdbUUID(uuid string) string {
	h := labUUIDHex(uuid)
	var ddb []string
	for i := 0; i+2 <= len(h); i += 2 {
		ddb = append(ddb, h[i:i+2])
	}
	if len(ddb) < 16 {
		return ""
	}
	return strings.Join(ddb[:8], " ") + "-" + strings.Join(ddb[8:], " ")
}

// labRecordLinkWrite adds an area to the list of what was written to a link.
func labRecordLinkWrite(desc string, off, n int64) error {
	f, err := os.OpenFile(labWritesFile(desc), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%d %d\n", off, n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// labLinkWrites reads what was written to a link (unsorted; empty when nothing was).
func labLinkWrites(desc string) ([]labExtent, error) {
	f, err := os.Open(labWritesFile(desc))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []labExtent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Fields(sc.Text())
		if len(p) != 2 {
			continue
		}
		off, err1 := strconv.ParseInt(p[0], 10, 64)
		n, err2 := strconv.ParseInt(p[1], 10, 64)
		if err1 == nil && err2 == nil && n > 0 {
			out = append(out, labExtent{off, n})
		}
	}
	return out, sc.Err()
}

// labMergeWrites appends the child's write list to the parent's and removes the child's.
func labMergeWrites(child, parent string) error {
	if labIsLink(parent) {
		w, err := labLinkWrites(child)
		if err != nil {
			return err
		}
		for _, e := range w {
			if err := labRecordLinkWrite(parent, e.off, e.len); err != nil {
				return err
			}
		}
	}
	_ = os.Remove(labWritesFile(child))
	return nil
}

// labRemoveLinkFiles deletes a link's delta data file(s) and write list.
func labRemoveLinkFiles(desc string) {
	_ = os.Remove(path.Join(path.Dir(desc), labDeltaDataName(desc, "seSparse")))
	_ = os.Remove(path.Join(path.Dir(desc), labDeltaDataName(desc, "vmfsSparse")))
	_ = os.Remove(labWritesFile(desc))
}

// labGrains lists the grains (of grainBytes) the areas touch, in order.
func labGrains(areas []labExtent, grainBytes, capacity int64) []int64 {
	set := map[int64]bool{}
	for _, a := range areas {
		end := a.off + a.len
		if end > capacity {
			end = capacity
		}
		for g := a.off / grainBytes; g*grainBytes < end; g++ {
			set[g] = true
		}
	}
	out := make([]int64, 0, len(set))
	for g := range set {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// labMaterialize rebuilds a link's delta data file from its complete image and write list.
func labMaterialize(desc string, capacity int64) error {
	format := labLinkFormat(desc, capacity)
	writes, err := labLinkWrites(desc)
	if err != nil {
		return err
	}
	src, err := os.Open(labFlat(desc))
	if err != nil {
		return err
	}
	defer src.Close()
	// Build under a temporary name, then rename: a reader never sees half a delta.
	target := path.Join(path.Dir(desc), labDeltaDataName(desc, format))
	tmp := path.Join(path.Dir(desc), "."+path.Base(target)+".tmp")
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0600)
	if err != nil {
		return err
	}
	if format == "vmfsSparse" {
		err = labWriteVmfsSparse(out, src, capacity, labGrains(writes, 512, capacity))
	} else {
		err = labWriteSeSparse(out, src, capacity, labGrains(writes, 4096, capacity))
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, target)
}

func labPut32(b []byte, at int64, v uint32) { binary.LittleEndian.PutUint32(b[at:], v) }
func labPut64(b []byte, at int64, v uint64) { binary.LittleEndian.PutUint64(b[at:], v) }

// labReadGrain reads grain g of grainBytes from the complete image (zeros past its end).
func labReadGrain(src *os.File, g, grainBytes int64, buf []byte) error {
	for i := range buf {
		buf[i] = 0
	}
	_, err := src.ReadAt(buf, g*grainBytes)
	if err != nil && err != io.EOF {
		return err
	}
	return nil
}

// labWriteVmfsSparse writes a vmfsSparse ("COWD") delta: 2048-byte header, grain directory,
// the grain tables in use (4096 entries each), then the 512-byte grains in disk order.
func labWriteVmfsSparse(out *os.File, src *os.File, capacity int64, grains []int64) error {
	const gtes = 4096
	sectors := capacity / 512
	gdEntries := (sectors + gtes - 1) / gtes
	gdOffset := int64(4)
	gdSectors := (gdEntries*4 + 511) / 512
	gtSectors := int64(gtes * 4 / 512)
	tables := labTablesOf(grains, gtes)
	gd := make([]byte, gdSectors*512)
	gts := make([]byte, int64(len(tables))*gtSectors*512)
	index := map[int64]int64{}
	next := gdOffset + gdSectors
	for i, t := range tables {
		labPut32(gd, t*4, uint32(next))
		index[t] = int64(i)
		next += gtSectors
	}
	dataStart := next
	for _, g := range grains {
		labPut32(gts, (index[g/gtes]*gtes+g%gtes)*4, uint32(next))
		next++
	}
	h := make([]byte, 2048)
	copy(h, "COWD")
	labPut32(h, 4, 1)
	labPut32(h, 8, 3)
	labPut32(h, 12, uint32(sectors))
	labPut32(h, 16, 1)
	labPut32(h, 20, uint32(gdOffset))
	labPut32(h, 24, uint32(gdEntries))
	labPut32(h, 28, uint32(next))
	for _, part := range []struct {
		at   int64
		data []byte
	}{{0, h}, {gdOffset * 512, gd}, {(gdOffset + gdSectors) * 512, gts}} {
		if _, err := out.WriteAt(part.data, part.at); err != nil {
			return err
		}
	}
	buf := make([]byte, 512)
	for i, g := range grains {
		if err := labReadGrain(src, g, 512, buf); err != nil {
			return err
		}
		if _, err := out.WriteAt(buf, (dataStart+int64(i))*512); err != nil {
			return err
		}
	}
	return out.Truncate(next * 512)
}

func labRoundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// labTablesOf lists the grain tables (of gtes entries) that the sorted grains fall in, in order.
func labTablesOf(grains []int64, gtes int64) []int64 {
	var tables []int64
	for _, g := range grains {
		if t := g / gtes; len(tables) == 0 || tables[len(tables)-1] != t {
			tables = append(tables, t)
		}
	}
	return tables
}

// labWriteSeSparse writes a seSparse delta as ESXi lays it out: const header, volatile header, empty
// journal, grain directory at sector 4096, grain tables, free bitmap and backmap (each rounded up to
// 2048 sectors), then the grains area; grains are numbered in disk order and all allocated.
func labWriteSeSparse(out *os.File, src *os.File, capacity int64, grains []int64) error {
	const grainSectors, gtSectors = 8, 64
	const gtes = gtSectors * 512 / 8
	sectors := capacity / 512
	tablesTotal := (sectors + gtes*grainSectors - 1) / (gtes * grainSectors)
	gdOffset := int64(4096)
	gdSectors := labRoundUp((tablesTotal*8+511)/512, 2048)
	gtOffset := gdOffset + gdSectors
	gtAreaSectors := labRoundUp(tablesTotal*gtSectors, 2048)
	bitmapOffset := gtOffset + gtAreaSectors
	bitmapSectors := labRoundUp(((sectors+grainSectors-1)/grainSectors/8+511)/512, 2048)
	backmapOffset := bitmapOffset + bitmapSectors
	backmapSectors := gtAreaSectors
	grainsOffset := backmapOffset + backmapSectors
	grainsSectors := labRoundUp(sectors, grainSectors)

	tables := labTablesOf(grains, gtes)
	gd := make([]byte, (tablesTotal*8+511)/512*512)
	gts := make([]byte, int64(len(tables))*gtSectors*512)
	index := map[int64]int64{}
	for i, t := range tables {
		labPut64(gd, t*8, 0x1000000000000000|uint64(i))
		index[t] = int64(i)
	}
	bitmap := make([]byte, (len(grains)+7)/8)
	backmap := make([]byte, len(grains)*8)
	for n, g := range grains {
		idx := uint64(n)
		labPut64(gts, index[g/gtes]*gtSectors*512+(g%gtes)*8, 0x3000000000000000|((idx&0xfff)<<48)|(idx>>12))
		bitmap[n>>3] |= 1 << uint(n&7)
		labPut64(backmap, int64(n)*8, uint64(index[g/gtes]))
	}
	cst := make([]byte, 512)
	for i, v := range []uint64{0xcafebabe, 0x0000000200000001, uint64(sectors), grainSectors, gtSectors, 0, 0, 0, 0, 0,
		1, 1, 2, 2, 2048, 2048,
		uint64(gdOffset), uint64(gdSectors), uint64(gtOffset), uint64(gtAreaSectors), uint64(bitmapOffset), uint64(bitmapSectors),
		uint64(backmapOffset), uint64(backmapSectors), uint64(grainsOffset), uint64(grainsSectors)} {
		labPut64(cst, int64(i)*8, v)
	}
	vol := make([]byte, 512)
	labPut64(vol, 0, 0xcafecafe)
	labPut64(vol, 8, uint64(len(tables))) // freeGTNumber
	for _, part := range []struct {
		at   int64
		data []byte
	}{{0, cst}, {512, vol}, {gdOffset * 512, gd}, {gtOffset * 512, gts}, {bitmapOffset * 512, bitmap}, {backmapOffset * 512, backmap}} {
		if len(part.data) == 0 {
			continue
		}
		if _, err := out.WriteAt(part.data, part.at); err != nil {
			return err
		}
	}
	buf := make([]byte, grainSectors*512)
	for n, g := range grains {
		if err := labReadGrain(src, g, int64(len(buf)), buf); err != nil {
			return err
		}
		if _, err := out.WriteAt(buf, grainsOffset*512+int64(n)*int64(len(buf))); err != nil {
			return err
		}
	}
	return out.Truncate(grainsOffset*512 + int64(len(grains))*int64(len(buf)))
}
