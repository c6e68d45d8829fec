// Vaultline lab extension: a small NFSv3 client, what an ESXi host speaks to its NAS.
//
// ONC RPC over TCP (RFC 5531, record marking of RFC 1831 §10), AUTH_SYS as
// uid 0 / gid 0, the portmapper (v2 GETPORT on port 111) to find MOUNT and NFS,
// MOUNT v3 MNT/UMNT and the NFS v3 procedures of RFC 1813 a datastore needs.
// Calls are pipelined on one connection (replies matched by xid); a broken
// connection is dialled again on the next call.

package simulator

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const (
	rpcPortmapProg = 100000
	rpcMountProg   = 100005
	rpcNfsProg     = 100003

	nfs3GetattrProc     = 1
	nfs3SetattrProc     = 2
	nfs3LookupProc      = 3
	nfs3AccessProc      = 4
	nfs3ReadProc        = 6
	nfs3WriteProc       = 7
	nfs3CreateProc      = 8
	nfs3MkdirProc       = 9
	nfs3RemoveProc      = 12
	nfs3RmdirProc       = 13
	nfs3RenameProc      = 14
	nfs3ReaddirplusProc = 17
	nfs3FsstatProc      = 18
	nfs3FsinfoProc      = 19
	nfs3CommitProc      = 21

	nfs3Unstable = 0
	nfs3FileSync = 2

	nfsDialTimeout = 3 * time.Second
	nfsCallTimeout = 60 * time.Second
)

// ---------------------------------------------------------------------------
// XDR

type xdrW struct{ b []byte }

func (w *xdrW) u32(v uint32) *xdrW { w.b = binary.BigEndian.AppendUint32(w.b, v); return w }
func (w *xdrW) u64(v uint64) *xdrW { w.b = binary.BigEndian.AppendUint64(w.b, v); return w }
func (w *xdrW) boolean(v bool) *xdrW {
	if v {
		return w.u32(1)
	}
	return w.u32(0)
}
func (w *xdrW) opaque(p []byte) *xdrW {
	w.u32(uint32(len(p)))
	w.b = append(w.b, p...)
	if pad := (4 - len(p)%4) % 4; pad > 0 {
		w.b = append(w.b, make([]byte, pad)...)
	}
	return w
}
func (w *xdrW) str(s string) *xdrW { return w.opaque([]byte(s)) }
func (w *xdrW) fixed(p []byte) *xdrW {
	w.b = append(w.b, p...)
	return w
}

// xdrR reads a reply; the first short read sets err and every later read gives zeros.
type xdrR struct {
	b   []byte
	err error
}

func (r *xdrR) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = io.ErrUnexpectedEOF
		return make([]byte, n)
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}
func (r *xdrR) u32() uint32   { return binary.BigEndian.Uint32(r.take(4)) }
func (r *xdrR) u64() uint64   { return binary.BigEndian.Uint64(r.take(8)) }
func (r *xdrR) boolean() bool { return r.u32() != 0 }
func (r *xdrR) fixed(n int) []byte {
	return append([]byte(nil), r.take(n)...)
}
func (r *xdrR) opaque(max int) []byte {
	n := int(r.u32())
	if n > max || n > len(r.b) {
		r.err = fmt.Errorf("xdr: opaque of %d bytes", n)
		return nil
	}
	p := r.fixed(n)
	r.take((4 - n%4) % 4)
	return p
}

// ---------------------------------------------------------------------------
// ONC RPC over TCP

type rpcReply struct {
	body []byte
	err  error
}

type rpcConn struct {
	addr string
	prog uint32
	vers uint32

	mu   sync.Mutex // link, xid and the writer
	link *rpcLink
	xid  uint32
}

// rpcLink is one TCP connection and the calls waiting on it.
type rpcLink struct {
	conn    net.Conn
	pending map[uint32]chan rpcReply
}

// rpcUnreachable marks errors of reaching the server at all (ESXi: "Unable to connect").
type rpcUnreachable struct{ err error }

func (e rpcUnreachable) Error() string { return e.err.Error() }

// rpcClosed: the connection ended while the call waited (the server may or may not have run it).
type rpcClosed struct{ err error }

func (e rpcClosed) Error() string { return e.err.Error() }

func newRPC(addr string, prog, vers uint32) *rpcConn {
	return &rpcConn{addr: addr, prog: prog, vers: vers, xid: uint32(time.Now().UnixNano())}
}

// authSys is the AUTH_SYS credential ESXi sends: root, no supplementary groups.
func authSys() []byte {
	w := &xdrW{}
	w.u32(uint32(time.Now().Unix())).str("vaultline-lab").u32(0).u32(0).u32(0)
	return w.b
}

func (c *rpcConn) dialLocked() (*rpcLink, error) {
	if c.link != nil {
		return c.link, nil
	}
	conn, err := net.DialTimeout("tcp", c.addr, nfsDialTimeout)
	if err != nil {
		return nil, rpcUnreachable{err}
	}
	l := &rpcLink{conn: conn, pending: map[uint32]chan rpcReply{}}
	c.link = l
	go c.readLoop(l)
	return l, nil
}

// readLoop hands each reply record to its caller; when the connection ends every call waiting on it fails.
func (c *rpcConn) readLoop(l *rpcLink) {
	br := bufio.NewReaderSize(l.conn, 256*1024)
	var err error
	for {
		var rec []byte
		rec, err = readRecord(br)
		if err != nil {
			break
		}
		if len(rec) < 4 {
			continue
		}
		xid := binary.BigEndian.Uint32(rec)
		c.mu.Lock()
		ch := l.pending[xid]
		delete(l.pending, xid)
		c.mu.Unlock()
		if ch != nil {
			ch <- rpcReply{body: rec}
		}
	}
	l.conn.Close()
	c.mu.Lock()
	if c.link == l {
		c.link = nil
	}
	for xid, ch := range l.pending {
		ch <- rpcReply{err: rpcClosed{fmt.Errorf("connection to %s closed: %v", c.addr, err)}}
		delete(l.pending, xid)
	}
	c.mu.Unlock()
}

// readRecord reads one RPC record: fragments of a 4-byte header (last-fragment bit, 31-bit length) and data.
func readRecord(r io.Reader) ([]byte, error) {
	var rec []byte
	for {
		var h [4]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil, err
		}
		v := binary.BigEndian.Uint32(h[:])
		n := int(v & 0x7fffffff)
		if len(rec)+n > 64<<20 {
			return nil, fmt.Errorf("rpc record over 64 MiB")
		}
		start := len(rec)
		rec = append(rec, make([]byte, n)...)
		if _, err := io.ReadFull(r, rec[start:]); err != nil {
			return nil, err
		}
		if v&0x80000000 != 0 {
			return rec, nil
		}
	}
}

// call sends one call and returns the procedure's result (past the accepted-reply header).
func (c *rpcConn) call(proc uint32, args []byte) (*xdrR, error) {
	for attempt := 0; ; attempt++ {
		r, sent, err := c.try(proc, args)
		// A connection the server had closed (idle) before it took the call is dialled again, once.
		if err != nil && !sent && attempt == 0 {
			if _, unreachable := err.(rpcUnreachable); !unreachable {
				continue
			}
		}
		return r, err
	}
}

func (c *rpcConn) try(proc uint32, args []byte) (*xdrR, bool, error) {
	c.mu.Lock()
	l, err := c.dialLocked()
	if err != nil {
		c.mu.Unlock()
		return nil, false, err
	}
	c.xid++
	xid := c.xid
	w := &xdrW{}
	w.u32(0) // record mark, set below
	w.u32(xid).u32(0 /* CALL */).u32(2).u32(c.prog).u32(c.vers).u32(proc)
	w.u32(1 /* AUTH_SYS */).opaque(authSys())
	w.u32(0).u32(0) // verifier AUTH_NONE
	w.fixed(args)
	binary.BigEndian.PutUint32(w.b, 0x80000000|uint32(len(w.b)-4))
	ch := make(chan rpcReply, 1)
	l.pending[xid] = ch
	_ = l.conn.SetWriteDeadline(time.Now().Add(nfsCallTimeout))
	if _, err := l.conn.Write(w.b); err != nil {
		delete(l.pending, xid)
		l.conn.Close() // readLoop fails the other calls on it
		if c.link == l {
			c.link = nil
		}
		c.mu.Unlock()
		return nil, false, err
	}
	c.mu.Unlock()
	var rep rpcReply
	timer := time.NewTimer(nfsCallTimeout)
	select {
	case rep = <-ch:
		timer.Stop()
	case <-timer.C:
		c.mu.Lock()
		delete(l.pending, xid)
		c.mu.Unlock()
		return nil, true, fmt.Errorf("rpc %d/%d: no reply from %s", c.prog, proc, c.addr)
	}
	if rep.err != nil {
		return nil, true, rep.err
	}
	r := &xdrR{b: rep.body}
	r.u32() // xid
	if r.u32() != 1 {
		return nil, true, errors.New("rpc: not a reply")
	}
	if r.u32() != 0 { // MSG_DENIED
		if r.u32() == 1 {
			return nil, true, fmt.Errorf("rpc: authentication refused (auth_stat %d)", r.u32())
		}
		return nil, true, errors.New("rpc: version mismatch")
	}
	r.u32()       // verifier flavor
	r.opaque(400) // verifier body
	if st := r.u32(); st != 0 {
		names := map[uint32]string{1: "PROG_UNAVAIL", 2: "PROG_MISMATCH", 3: "PROC_UNAVAIL", 4: "GARBAGE_ARGS", 5: "SYSTEM_ERR"}
		return nil, true, fmt.Errorf("rpc program %d: %s", c.prog, names[st])
	}
	return r, true, r.err
}

func (c *rpcConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.link != nil {
		c.link.conn.Close()
		c.link = nil
	}
}

// portmapGetport asks the portmapper on host:111 for the TCP port of a program.
func portmapGetport(host string, prog, vers uint32) (int, error) {
	pm := newRPC(net.JoinHostPort(host, "111"), rpcPortmapProg, 2)
	defer pm.close()
	w := &xdrW{}
	w.u32(prog).u32(vers).u32(6 /* TCP */).u32(0)
	r, err := pm.call(3 /* GETPORT */, w.b)
	if err != nil {
		return 0, err
	}
	port := r.u32()
	if r.err != nil {
		return 0, r.err
	}
	if port == 0 {
		return 0, rpcUnreachable{fmt.Errorf("program %d v%d is not registered with the portmapper of %s", prog, vers, host)}
	}
	return int(port), nil
}

// ---------------------------------------------------------------------------
// MOUNT v3

// nfsMountError is a MNT3 status other than OK.
type nfsMountError struct{ status uint32 }

func (e nfsMountError) Error() string {
	names := map[uint32]string{1: "MNT3ERR_PERM", 2: "MNT3ERR_NOENT", 5: "MNT3ERR_IO", 13: "MNT3ERR_ACCES", 20: "MNT3ERR_NOTDIR",
		22: "MNT3ERR_INVAL", 63: "MNT3ERR_NAMETOOLONG", 10004: "MNT3ERR_NOTSUPP", 10006: "MNT3ERR_SERVERFAULT"}
	if n, ok := names[e.status]; ok {
		return n
	}
	return "MNT3ERR " + strconv.Itoa(int(e.status))
}

// ---------------------------------------------------------------------------
// NFS v3

// nfsAttr is the part of fattr3 the lab uses.
type nfsAttr struct {
	Type                uint32 // 1 REG, 2 DIR, 5 LNK, …
	Mode, Nlink         uint32
	UID, GID            uint32
	Size, Used          uint64
	Fsid, Fileid        uint64
	Atime, Mtime, Ctime time.Time
}

func readTime(r *xdrR) time.Time {
	s, ns := r.u32(), r.u32()
	return time.Unix(int64(s), int64(ns))
}

func readFattr(r *xdrR) nfsAttr {
	var a nfsAttr
	a.Type, a.Mode, a.Nlink, a.UID, a.GID = r.u32(), r.u32(), r.u32(), r.u32(), r.u32()
	a.Size, a.Used = r.u64(), r.u64()
	r.u32()
	r.u32() // rdev
	a.Fsid, a.Fileid = r.u64(), r.u64()
	a.Atime, a.Mtime, a.Ctime = readTime(r), readTime(r), readTime(r)
	return a
}

func readPostOp(r *xdrR) *nfsAttr {
	if !r.boolean() {
		return nil
	}
	a := readFattr(r)
	return &a
}

func skipWcc(r *xdrR) *nfsAttr {
	if r.boolean() {
		r.take(24) // size, mtime, ctime before
	}
	return readPostOp(r)
}

// nfsStatusErr maps an nfsstat3 to the errno a local file system would give.
func nfsStatusErr(st uint32) syscall.Errno {
	switch st {
	case 1:
		return syscall.EPERM
	case 2:
		return syscall.ENOENT
	case 6:
		return syscall.ENXIO
	case 13:
		return syscall.EACCES
	case 17:
		return syscall.EEXIST
	case 18:
		return syscall.EXDEV
	case 19:
		return syscall.ENODEV
	case 20:
		return syscall.ENOTDIR
	case 21:
		return syscall.EISDIR
	case 22:
		return syscall.EINVAL
	case 27:
		return syscall.EFBIG
	case 28:
		return syscall.ENOSPC
	case 30:
		return syscall.EROFS
	case 31:
		return syscall.EMLINK
	case 63:
		return syscall.ENAMETOOLONG
	case 66:
		return syscall.ENOTEMPTY
	case 69:
		return syscall.EDQUOT
	case 70, 10001:
		return syscall.ESTALE
	case 10004:
		return syscall.EOPNOTSUPP
	case 10008:
		return syscall.EAGAIN
	}
	return syscall.EIO
}

// nfsClient is one mounted export.
type nfsClient struct {
	host, path string
	nfs        *rpcConn
	mountPort  int
	root       []byte
	rtmax      uint32
	wtmax      uint32
}

// nfsMount finds MOUNT and NFS through the portmapper, mounts host:path and reads FSINFO.
func nfsMount(host, exportPath string) (*nfsClient, error) {
	mport, err := portmapGetport(host, rpcMountProg, 3)
	if err != nil {
		return nil, err
	}
	nport, err := portmapGetport(host, rpcNfsProg, 3)
	if err != nil {
		return nil, err
	}
	mnt := newRPC(net.JoinHostPort(host, strconv.Itoa(mport)), rpcMountProg, 3)
	defer mnt.close()
	r, err := mnt.call(1 /* MNT */, (&xdrW{}).str(exportPath).b)
	if err != nil {
		return nil, err
	}
	if st := r.u32(); st != 0 {
		return nil, nfsMountError{st}
	}
	fh := r.opaque(64)
	if r.err != nil {
		return nil, r.err
	}
	c := &nfsClient{host: host, path: exportPath, nfs: newRPC(net.JoinHostPort(host, strconv.Itoa(nport)), rpcNfsProg, 3), mountPort: mport, root: fh, rtmax: 64 * 1024, wtmax: 64 * 1024}
	if err := c.fsinfo(); err != nil {
		c.nfs.close()
		return nil, err
	}
	return c, nil
}

// unmount tells the server's MOUNT service the export is no longer used and closes the connection.
func (c *nfsClient) unmount() {
	c.nfs.close()
	mnt := newRPC(net.JoinHostPort(c.host, strconv.Itoa(c.mountPort)), rpcMountProg, 3)
	defer mnt.close()
	_, _ = mnt.call(3 /* UMNT */, (&xdrW{}).str(c.path).b)
}

// nfsIdempotent are the procedures that may simply be sent again when a connection closed under them
// (the server's idle timeout, a restart): running them twice does no harm.
var nfsIdempotent = map[uint32]bool{nfs3GetattrProc: true, nfs3LookupProc: true, nfs3AccessProc: true, nfs3ReadProc: true,
	nfs3WriteProc: true, nfs3ReaddirplusProc: true, nfs3FsstatProc: true, nfs3FsinfoProc: true, nfs3CommitProc: true}

// nfsCall runs an NFS procedure and returns the reader past a status of NFS3_OK, or the status as errno
// (the reader positioned after the status either way, for the failure's wcc or post-op data).
func (c *nfsClient) nfsCall(proc uint32, args *xdrW) (*xdrR, syscall.Errno) {
	r, err := c.nfs.call(proc, args.b)
	if _, closed := err.(rpcClosed); closed && nfsIdempotent[proc] {
		r, err = c.nfs.call(proc, args.b)
	}
	if err != nil {
		log.Printf("lab: NFS %s:%s procedure %d: %v", c.host, c.path, proc, err)
		return nil, syscall.EIO
	}
	if st := r.u32(); st != 0 {
		return r, nfsStatusErr(st)
	}
	if r.err != nil {
		return nil, syscall.EIO
	}
	return r, 0
}

func (c *nfsClient) fsinfo() error {
	r, err := c.nfs.call(nfs3FsinfoProc, (&xdrW{}).opaque(c.root).b)
	if err != nil {
		return err
	}
	if st := r.u32(); st != 0 {
		return nfsStatusErr(st)
	}
	readPostOp(r)
	rtmax, _, _ := r.u32(), r.u32(), r.u32()
	wtmax, _, _ := r.u32(), r.u32(), r.u32()
	if r.err != nil {
		return r.err
	}
	// FUSE hands at most 1 MiB per request; keep each RPC within what the server takes.
	const most = 1 << 20
	if rtmax > 0 {
		c.rtmax = minU32(rtmax, most)
	}
	if wtmax > 0 {
		c.wtmax = minU32(wtmax, most)
	}
	return nil
}

func minU32(a, b uint32) uint32 {
	if a < b {
		return a
	}
	return b
}

func (c *nfsClient) getattr(fh []byte) (nfsAttr, syscall.Errno) {
	r, errno := c.nfsCall(nfs3GetattrProc, (&xdrW{}).opaque(fh))
	if errno != 0 {
		return nfsAttr{}, errno
	}
	return readFattr(r), 0
}

// nfsSattr is a SETATTR/CREATE/MKDIR sattr3; nil fields are left as they are.
type nfsSattr struct {
	mode  *uint32
	size  *uint64
	atime *time.Time
	mtime *time.Time
}

func (w *xdrW) sattr(s nfsSattr) *xdrW {
	w.boolean(s.mode != nil)
	if s.mode != nil {
		w.u32(*s.mode & 07777)
	}
	w.boolean(false).boolean(false) // uid, gid: the server's
	w.boolean(s.size != nil)
	if s.size != nil {
		w.u64(*s.size)
	}
	for _, t := range []*time.Time{s.atime, s.mtime} {
		if t == nil {
			w.u32(0) // DONT_CHANGE
		} else {
			w.u32(2).u32(uint32(t.Unix())).u32(uint32(t.Nanosecond()))
		}
	}
	return w
}

func (c *nfsClient) setattr(fh []byte, s nfsSattr) (nfsAttr, syscall.Errno) {
	r, errno := c.nfsCall(nfs3SetattrProc, (&xdrW{}).opaque(fh).sattr(s).boolean(false))
	if errno != 0 {
		return nfsAttr{}, errno
	}
	if a := skipWcc(r); a != nil {
		return *a, 0
	}
	return c.getattr(fh)
}

// lookup gives the handle and attributes of name in dir.
func (c *nfsClient) lookup(dir []byte, name string) ([]byte, nfsAttr, syscall.Errno) {
	r, errno := c.nfsCall(nfs3LookupProc, (&xdrW{}).opaque(dir).str(name))
	if errno != 0 {
		return nil, nfsAttr{}, errno
	}
	fh := r.opaque(64)
	a := readPostOp(r)
	if r.err != nil {
		return nil, nfsAttr{}, syscall.EIO
	}
	if a == nil {
		at, errno := c.getattr(fh)
		return fh, at, errno
	}
	return fh, *a, 0
}

// access asks which of the ACCESS3 bits the server grants (READ 1, LOOKUP 2, MODIFY 4, EXTEND 8, DELETE 16, EXECUTE 32).
func (c *nfsClient) access(fh []byte, want uint32) (uint32, syscall.Errno) {
	r, errno := c.nfsCall(nfs3AccessProc, (&xdrW{}).opaque(fh).u32(want))
	if errno != 0 {
		return 0, errno
	}
	readPostOp(r)
	return r.u32(), 0
}

// read fills dest from off as far as the file goes (several READs when dest is larger than rtmax).
func (c *nfsClient) read(fh []byte, dest []byte, off int64) (int, syscall.Errno) {
	n := 0
	for n < len(dest) {
		want := minU32(uint32(len(dest)-n), c.rtmax)
		r, errno := c.nfsCall(nfs3ReadProc, (&xdrW{}).opaque(fh).u64(uint64(off)+uint64(n)).u32(want))
		if errno != 0 {
			return n, errno
		}
		readPostOp(r)
		r.u32() // count
		eof := r.boolean()
		data := r.opaque(int(want))
		if r.err != nil {
			return n, syscall.EIO
		}
		n += copy(dest[n:], data)
		if eof || len(data) == 0 {
			break
		}
	}
	return n, 0
}

// write sends data at off in WRITEs of at most wtmax; unstable ones need a commit later. Returns the
// write verifier of the last reply (a change between a write and its commit means the server lost it).
func (c *nfsClient) write(fh []byte, data []byte, off int64, stable uint32) (int, []byte, syscall.Errno) {
	n := 0
	var verf []byte
	for n < len(data) {
		part := data[n:]
		if uint32(len(part)) > c.wtmax {
			part = part[:c.wtmax]
		}
		r, errno := c.nfsCall(nfs3WriteProc, (&xdrW{}).opaque(fh).u64(uint64(off)+uint64(n)).u32(uint32(len(part))).u32(stable).opaque(part))
		if errno != 0 {
			return n, verf, errno
		}
		skipWcc(r)
		count := r.u32()
		r.u32() // committed
		verf = r.fixed(8)
		if r.err != nil || count == 0 {
			return n, verf, syscall.EIO
		}
		n += int(count)
	}
	return n, verf, 0
}

// commit makes unstable writes durable and returns the server's write verifier.
func (c *nfsClient) commit(fh []byte) ([]byte, syscall.Errno) {
	r, errno := c.nfsCall(nfs3CommitProc, (&xdrW{}).opaque(fh).u64(0).u32(0))
	if errno != 0 {
		return nil, errno
	}
	skipWcc(r)
	return r.fixed(8), 0
}

// created reads a CREATE/MKDIR result: the new handle and attributes (looked up when the server leaves them out).
func (c *nfsClient) created(r *xdrR, dir []byte, name string) ([]byte, nfsAttr, syscall.Errno) {
	var fh []byte
	if r.boolean() {
		fh = r.opaque(64)
	}
	a := readPostOp(r)
	if r.err != nil {
		return nil, nfsAttr{}, syscall.EIO
	}
	if fh == nil {
		return c.lookup(dir, name)
	}
	if a == nil {
		at, errno := c.getattr(fh)
		return fh, at, errno
	}
	return fh, *a, 0
}

// create makes a regular file (GUARDED when exclusive, like O_EXCL; UNCHECKED otherwise, truncating it).
func (c *nfsClient) create(dir []byte, name string, mode uint32, exclusive bool) ([]byte, nfsAttr, syscall.Errno) {
	how := uint32(0)
	if exclusive {
		how = 1
	}
	r, errno := c.nfsCall(nfs3CreateProc, (&xdrW{}).opaque(dir).str(name).u32(how).sattr(nfsSattr{mode: &mode}))
	if errno != 0 {
		return nil, nfsAttr{}, errno
	}
	return c.created(r, dir, name)
}

func (c *nfsClient) mkdir(dir []byte, name string, mode uint32) ([]byte, nfsAttr, syscall.Errno) {
	r, errno := c.nfsCall(nfs3MkdirProc, (&xdrW{}).opaque(dir).str(name).sattr(nfsSattr{mode: &mode}))
	if errno != 0 {
		return nil, nfsAttr{}, errno
	}
	return c.created(r, dir, name)
}

func (c *nfsClient) remove(dir []byte, name string, isDir bool) syscall.Errno {
	proc := uint32(nfs3RemoveProc)
	if isDir {
		proc = nfs3RmdirProc
	}
	_, errno := c.nfsCall(proc, (&xdrW{}).opaque(dir).str(name))
	return errno
}

func (c *nfsClient) rename(fromDir []byte, from string, toDir []byte, to string) syscall.Errno {
	_, errno := c.nfsCall(nfs3RenameProc, (&xdrW{}).opaque(fromDir).str(from).opaque(toDir).str(to))
	return errno
}

// nfsDirent is one READDIRPLUS entry (fh nil when the server left the handle out).
type nfsDirent struct {
	name   string
	fileid uint64
	fh     []byte
	attr   *nfsAttr
}

// readdir lists a directory with READDIRPLUS, page by page (cookies), without "." and "..".
func (c *nfsClient) readdir(dir []byte) ([]nfsDirent, syscall.Errno) {
	var out []nfsDirent
	var cookie uint64
	verf := make([]byte, 8)
	for {
		r, errno := c.nfsCall(nfs3ReaddirplusProc, (&xdrW{}).opaque(dir).u64(cookie).fixed(verf).u32(64*1024).u32(256*1024))
		if errno != 0 {
			return nil, errno
		}
		readPostOp(r)
		verf = r.fixed(8)
		n := 0
		for r.boolean() {
			e := nfsDirent{fileid: r.u64(), name: string(r.opaque(4096))}
			cookie = r.u64()
			e.attr = readPostOp(r)
			if r.boolean() {
				e.fh = r.opaque(64)
			}
			if r.err != nil {
				return nil, syscall.EIO
			}
			n++
			if e.name != "." && e.name != ".." {
				out = append(out, e)
			}
		}
		eof := r.boolean()
		if r.err != nil {
			return nil, syscall.EIO
		}
		if eof || n == 0 {
			return out, 0
		}
	}
}

// nfsFsstat is FSSTAT's answer in bytes and files.
type nfsFsstat struct{ tbytes, fbytes, abytes, tfiles, ffiles, afiles uint64 }

func (c *nfsClient) fsstat() (nfsFsstat, syscall.Errno) {
	r, errno := c.nfsCall(nfs3FsstatProc, (&xdrW{}).opaque(c.root))
	if errno != 0 {
		return nfsFsstat{}, errno
	}
	readPostOp(r)
	s := nfsFsstat{r.u64(), r.u64(), r.u64(), r.u64(), r.u64(), r.u64()}
	if r.err != nil {
		return nfsFsstat{}, syscall.EIO
	}
	return s, 0
}
