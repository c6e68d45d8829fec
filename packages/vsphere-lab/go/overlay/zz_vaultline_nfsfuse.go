// Vaultline lab extension: an NFS export mounted with FUSE, as the datastore's local folder.
//
// The simulator and the lab reach datastore files with os.* on a local path;
// mounting the export there (go-fuse v2 from Debian) sends every one of those
// reads and writes over NFS to the server, as an ESXi host's would go. Each
// FUSE node holds its NFS file handle; writes go UNSTABLE and are committed
// at fsync and close (a changed write verifier then is an I/O error, as the
// server lost them).

package simulator

import (
	"bytes"
	"context"
	"io/ioutil"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// labFuseMount is one mounted export.
type labFuseMount struct {
	client *nfsClient
	server *fuse.Server
	dir    string
}

type nfsFS struct {
	c  *nfsClient
	ro bool
}

type nfsNode struct {
	fs.Inode
	fsys *nfsFS
	fh   []byte

	mu    sync.Mutex
	dirty bool   // unstable writes not yet committed
	verf  []byte // the write verifier those writes got
}

var (
	_ fs.NodeLookuper  = (*nfsNode)(nil)
	_ fs.NodeGetattrer = (*nfsNode)(nil)
	_ fs.NodeSetattrer = (*nfsNode)(nil)
	_ fs.NodeOpener    = (*nfsNode)(nil)
	_ fs.NodeReader    = (*nfsNode)(nil)
	_ fs.NodeWriter    = (*nfsNode)(nil)
	_ fs.NodeFlusher   = (*nfsNode)(nil)
	_ fs.NodeFsyncer   = (*nfsNode)(nil)
	_ fs.NodeCreater   = (*nfsNode)(nil)
	_ fs.NodeMkdirer   = (*nfsNode)(nil)
	_ fs.NodeUnlinker  = (*nfsNode)(nil)
	_ fs.NodeRmdirer   = (*nfsNode)(nil)
	_ fs.NodeRenamer   = (*nfsNode)(nil)
	_ fs.NodeReaddirer = (*nfsNode)(nil)
	_ fs.NodeStatfser  = (*nfsNode)(nil)
	_ fs.NodeAccesser  = (*nfsNode)(nil)
	_ fs.NodeLseeker   = (*nfsNode)(nil)
)

func nfsTypeBits(t uint32) uint32 {
	switch t {
	case 2:
		return syscall.S_IFDIR
	case 3:
		return syscall.S_IFBLK
	case 4:
		return syscall.S_IFCHR
	case 5:
		return syscall.S_IFLNK
	case 6:
		return syscall.S_IFSOCK
	case 7:
		return syscall.S_IFIFO
	}
	return syscall.S_IFREG
}

func fillAttr(a nfsAttr, out *fuse.Attr) {
	out.Mode = nfsTypeBits(a.Type) | a.Mode&07777
	out.Size = a.Size
	out.Blocks = (a.Used + 511) / 512
	out.Blksize = 4096
	out.Nlink = a.Nlink
	out.Owner = fuse.Owner{Uid: a.UID, Gid: a.GID}
	out.SetTimes(&a.Atime, &a.Mtime, &a.Ctime)
	out.Ino = a.Fileid
}

// child makes the inode for a handle the server gave (lookup, create, mkdir).
func (n *nfsNode) child(ctx context.Context, fh []byte, a nfsAttr, out *fuse.EntryOut) *fs.Inode {
	fillAttr(a, &out.Attr)
	return n.NewInode(ctx, &nfsNode{fsys: n.fsys, fh: fh}, fs.StableAttr{Mode: nfsTypeBits(a.Type)})
}

func (n *nfsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	fh, a, errno := n.fsys.c.lookup(n.fh, name)
	if errno != 0 {
		return nil, errno
	}
	return n.child(ctx, fh, a, out), 0
}

func (n *nfsNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	a, errno := n.fsys.c.getattr(n.fh)
	if errno == 0 {
		fillAttr(a, &out.Attr)
	}
	return errno
}

func (n *nfsNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	var s nfsSattr
	if m, ok := in.GetMode(); ok {
		s.mode = &m
	}
	if size, ok := in.GetSize(); ok {
		s.size = &size
	}
	if t, ok := in.GetATime(); ok {
		s.atime = &t
	}
	if t, ok := in.GetMTime(); ok {
		s.mtime = &t
	}
	if n.fsys.ro && (s.mode != nil || s.size != nil || s.atime != nil || s.mtime != nil) {
		return syscall.EROFS
	}
	a, errno := n.fsys.c.setattr(n.fh, s)
	if errno == 0 {
		fillAttr(a, &out.Attr)
	}
	return errno
}

func (n *nfsNode) Access(ctx context.Context, mask uint32) syscall.Errno {
	var want uint32
	if mask&4 != 0 { // R_OK
		want |= 1
	}
	if mask&2 != 0 { // W_OK
		if n.fsys.ro {
			return syscall.EROFS
		}
		want |= 4 | 8
	}
	if mask&1 != 0 { // X_OK: execute a file, search a directory
		want |= 32 | 2
	}
	if want == 0 {
		return 0
	}
	got, errno := n.fsys.c.access(n.fh, want)
	if errno != 0 {
		return errno
	}
	if mask&1 != 0 && got&(32|2) != 0 {
		got |= 32 | 2
	}
	if got&want != want {
		return syscall.EACCES
	}
	return 0
}

func (n *nfsNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.fsys.ro && flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		return nil, 0, syscall.EROFS
	}
	return nil, 0, 0
}

func (n *nfsNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	got, errno := n.fsys.c.read(n.fh, dest, off)
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(dest[:got]), 0
}

func (n *nfsNode) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if n.fsys.ro {
		return 0, syscall.EROFS
	}
	got, verf, errno := n.fsys.c.write(n.fh, data, off, nfs3Unstable)
	if got > 0 {
		n.mu.Lock()
		if n.dirty && !bytes.Equal(n.verf, verf) {
			errno = syscall.EIO // the server restarted between two writes: the first ones may be gone
		}
		n.dirty, n.verf = true, verf
		n.mu.Unlock()
	}
	return uint32(got), errno
}

// commit makes the node's unstable writes durable on the server.
func (n *nfsNode) commit() syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.dirty {
		return 0
	}
	verf, errno := n.fsys.c.commit(n.fh)
	if errno != 0 {
		return errno
	}
	n.dirty = false
	if !bytes.Equal(verf, n.verf) {
		return syscall.EIO
	}
	return 0
}

func (n *nfsNode) Flush(ctx context.Context, f fs.FileHandle) syscall.Errno { return n.commit() }

func (n *nfsNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	return n.commit()
}

// Lseek: NFSv3 has no SEEK_DATA, so a file is all data up to its size (never "all hole", go-fuse's default).
func (n *nfsNode) Lseek(ctx context.Context, f fs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	a, errno := n.fsys.c.getattr(n.fh)
	if errno != 0 {
		return 0, errno
	}
	if off >= a.Size {
		return 0, syscall.ENXIO
	}
	if whence == 4 { // SEEK_HOLE
		return a.Size, 0
	}
	return off, 0 // SEEK_DATA
}

func (n *nfsNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if n.fsys.ro {
		return nil, nil, 0, syscall.EROFS
	}
	fh, a, errno := n.fsys.c.create(n.fh, name, mode, flags&syscall.O_EXCL != 0)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 && a.Size > 0 {
		zero := uint64(0)
		if a, errno = n.fsys.c.setattr(fh, nfsSattr{size: &zero}); errno != 0 {
			return nil, nil, 0, errno
		}
	}
	return n.child(ctx, fh, a, out), nil, 0, 0
}

func (n *nfsNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.fsys.ro {
		return nil, syscall.EROFS
	}
	fh, a, errno := n.fsys.c.mkdir(n.fh, name, mode)
	if errno != 0 {
		return nil, errno
	}
	return n.child(ctx, fh, a, out), 0
}

func (n *nfsNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.fsys.ro {
		return syscall.EROFS
	}
	return n.fsys.c.remove(n.fh, name, false)
}

func (n *nfsNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.fsys.ro {
		return syscall.EROFS
	}
	return n.fsys.c.remove(n.fh, name, true)
}

func (n *nfsNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.fsys.ro {
		return syscall.EROFS
	}
	if flags != 0 {
		return syscall.EINVAL // RENAME_NOREPLACE/EXCHANGE have no NFSv3 form
	}
	to, ok := newParent.(*nfsNode)
	if !ok {
		return syscall.EXDEV
	}
	return n.fsys.c.rename(n.fh, name, to.fh, newName)
}

func (n *nfsNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	list, errno := n.fsys.c.readdir(n.fh)
	if errno != 0 {
		return nil, errno
	}
	out := make([]fuse.DirEntry, 0, len(list))
	for _, e := range list {
		mode := uint32(syscall.S_IFREG)
		if e.attr != nil {
			mode = nfsTypeBits(e.attr.Type)
		}
		out = append(out, fuse.DirEntry{Name: e.name, Mode: mode, Ino: e.fileid})
	}
	return fs.NewListDirStream(out), 0
}

func (n *nfsNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	s, errno := n.fsys.c.fsstat()
	if errno != 0 {
		return errno
	}
	const bs = 4096
	out.Bsize, out.Frsize, out.NameLen = bs, bs, 255
	out.Blocks, out.Bfree, out.Bavail = s.tbytes/bs, s.fbytes/bs, s.abytes/bs
	out.Files, out.Ffree = s.tfiles, s.ffiles
	return 0
}

// labNfsMountDir is where export mounts live: <run>/nas/<id> (the server runs in the lab's run folder).
func labNfsMountDir(id string) (string, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return filepath.Join(cwd, "nas", id), nil
}

// labNfsMount mounts host:exportPath at <run>/nas/<id>. The error is the NFS client's (see labNfsFault).
func labNfsMount(host, exportPath, id string, readOnly bool) (*labFuseMount, error) {
	c, err := nfsMount(host, exportPath)
	if err != nil {
		return nil, err
	}
	dir, err := labNfsMountDir(id)
	if err == nil {
		err = os.MkdirAll(dir, 0700)
	}
	if err != nil {
		c.unmount()
		return nil, err
	}
	sec := time.Second
	opts := &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		MountOptions: fuse.MountOptions{
			FsName:      host + ":" + exportPath,
			Name:        "nfs",
			DirectMount: true, // root: no fusermount needed (go-fuse falls back to it otherwise)
			// Loop devices and tools of other users read the datastore too; fusermount allows it only to root.
			AllowOther: os.Geteuid() == 0,
			MaxWrite:   fuse.MAX_KERNEL_WRITE,
		},
	}
	if readOnly {
		opts.MountOptions.Options = []string{"ro"}
	}
	root := &nfsNode{fsys: &nfsFS{c: c, ro: readOnly}, fh: c.root}
	server, err := fs.Mount(dir, root, opts)
	if err != nil {
		c.unmount()
		_ = os.Remove(dir)
		return nil, err
	}
	log.Printf("lab: NFS %s:%s mounted at %s (FUSE)", host, exportPath, dir)
	return &labFuseMount{client: c, server: server, dir: dir}, nil
}

// unmount detaches the FUSE mount (lazily when something still holds it) and tells the server (UMNT).
func (m *labFuseMount) unmount() {
	if err := m.server.Unmount(); err != nil {
		log.Printf("lab: unmount %s: %s; detaching it lazily", m.dir, err)
		_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
	}
	m.client.unmount()
	_ = os.Remove(m.dir)
}

// labNfsSweep lazily unmounts what a killed lab left mounted under <run>/nas (its FUSE server is gone:
// every access there would fail with ENOTCONN).
func labNfsSweep() {
	cwd, err := os.Getwd()
	if err != nil {
		return
	}
	b, err := ioutil.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	prefix := filepath.Join(cwd, "nas") + "/"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mnt := strings.ReplaceAll(f[1], `\040`, " ")
		if strings.HasPrefix(mnt, prefix) {
			if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err == nil {
				log.Printf("lab: stale mount %s detached", mnt)
			}
		}
	}
}
