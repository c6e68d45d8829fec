// Vaultline lab extension: ESXi hosts a client can reach directly.
//
// On vSphere a backup tool can read a datastore file from the ESXi host that
// runs the VM instead of through vCenter's /folder proxy: it asks vCenter for a
// generic service ticket for that host URL (AcquireGenericServiceTicket, one
// ticket per request, single use), then sends the GET to
// https://<host>/folder/<path>?dcPath=ha-datacenter&dsName=<datastore> with the
// ticket as cookie vmware_cgi_ticket, and checks the host's certificate against
// the SHA-1 thumbprint the ticket names.
//
// With LabStartDirectHosts (the lab's -direct-hosts flag; root, as it binds
// port 443), every host of the lab gets a loopback address of its own
// (127.x.y.z) which becomes its name, and an HTTPS listener there on port 443
// with a certificate of its own, serving /folder for the datastores it mounts.
// It accepts a request only with an unused ticket issued for exactly that URL
// and method; tickets for these hosts are issued (to logged-in sessions) with
// the host's address and thumbprint.

package simulator

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"html"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

type labDirectHost struct {
	ip    string
	thumb string // SHA-1 of the certificate, colon-separated upper-case hex
	host  *HostSystem
	mu    sync.Mutex
	// requests still answered before the host starts failing (503); negative = always answer
	answers int
}

// take counts one request against the host's answers; false when it must fail.
func (d *labDirectHost) take() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.answers < 0 {
		return true
	}
	if d.answers == 0 {
		return false
	}
	d.answers--
	return true
}

// LabDirectHostAnswers makes the host at ip answer n more /folder requests, then fail them with 503
// (n < 0: answer all again). False when no host has that address.
func LabDirectHostAnswers(ip string, n int) bool {
	d, ok := labDirectHosts[ip]
	if !ok {
		return false
	}
	d.mu.Lock()
	d.answers = n
	d.mu.Unlock()
	return true
}

var (
	labDirectHosts = map[string]*labDirectHost{} // ip -> host
	labTickets     sync.Map                      // id -> labTicket
)

type labTicket struct {
	url    string
	method string
}

func labSelfSigned(ip string) (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: ip, Organization: []string{"Vaultline lab ESXi host"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP(ip)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	sum := sha1.Sum(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, strings.Join(parts, ":"), nil
}

// LabStartDirectHosts gives every host a loopback address (its new name) and an HTTPS /folder there.
func LabStartDirectHosts() error {
	for _, e := range Map.All("HostSystem") {
		h := e.(*HostSystem)
		var ln net.Listener
		var ip string
		var err error
		for try := 0; try < 50; try++ {
			b := make([]byte, 3)
			_, _ = rand.Read(b)
			if b[2] < 2 || b[2] == 255 {
				continue
			}
			ip = fmt.Sprintf("127.%d.%d.%d", b[0]%254+1, b[1], b[2])
			if ln, err = net.Listen("tcp", ip+":443"); err == nil {
				break
			}
		}
		if ln == nil {
			return fmt.Errorf("host %s: no loopback address with port 443 free: %v", h.Name, err)
		}
		cert, thumb, err := labSelfSigned(ip)
		if err != nil {
			return err
		}
		d := &labDirectHost{ip: ip, thumb: thumb, host: h, answers: -1}
		labDirectHosts[ip] = d
		log.Printf("lab: host %s answers directly at https://%s/ (SHA-1 %s)", h.Name, ip, thumb)
		h.Name = ip
		h.Summary.Config.Name = ip
		srv := &http.Server{Handler: d, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
	}
	return nil
}

var (
	labTicketURLRe    = regexp.MustCompile(`<url>([^<]*)</url>`)
	labTicketMethodRe = regexp.MustCompile(`<method>([^<]*)</method>`)
)

// labIssueTicket answers AcquireGenericServiceTicket for a direct host's URL (after the simulator has
// checked the session); false when the request is not for one.
func labIssueTicket(w http.ResponseWriter, r *http.Request, body string, next http.Handler) bool {
	m := labTicketURLRe.FindStringSubmatch(body)
	if m == nil {
		return false
	}
	target := html.UnescapeString(m[1])
	u, err := url.Parse(target)
	if err != nil {
		return false
	}
	d, ok := labDirectHosts[u.Hostname()]
	if !ok {
		return false
	}
	// Let the simulator answer first: it refuses a request without a valid session.
	rec := httptest.NewRecorder()
	r.Body = ioutil.NopCloser(strings.NewReader(body))
	next.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK || bytes.Contains(rec.Body.Bytes(), []byte("Fault>")) {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return true
	}
	method := "httpGet"
	if mm := labTicketMethodRe.FindStringSubmatch(body); mm != nil {
		method = mm[1]
	}
	id := uuid.New().String()
	labTickets.Store(id, labTicket{url: target, method: method})
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><AcquireGenericServiceTicketResponse xmlns="urn:vim25"><returnval><id>%s</id><hostName>%s</hostName><sslThumbprint>%s</sslThumbprint></returnval></AcquireGenericServiceTicketResponse></soapenv:Body></soapenv:Envelope>`, id, d.ip, d.thumb)
	return true
}

// sameURL compares a request with the URL a ticket was issued for (query order aside).
func labSameURL(a, b *url.URL) bool {
	return a.Hostname() == b.Hostname() && a.Port() == b.Port() && a.Path == b.Path && a.Query().Encode() == b.Query().Encode()
}

func (d *labDirectHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/folder/") {
		http.NotFound(w, r)
		return
	}
	if !d.take() {
		// Told to fail (LabDirectHostAnswers): the host is overloaded or going away.
		http.Error(w, "host is not answering requests", http.StatusServiceUnavailable)
		return
	}
	c, err := r.Cookie("vmware_cgi_ticket")
	if err != nil {
		http.Error(w, "a service ticket (cookie vmware_cgi_ticket) is required", http.StatusUnauthorized)
		return
	}
	v, ok := labTickets.LoadAndDelete(c.Value)
	if !ok {
		http.Error(w, "unknown or used service ticket", http.StatusUnauthorized)
		return
	}
	t := v.(labTicket)
	issued, err := url.Parse(t.url)
	want := "httpGet"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		want = "http" + r.Method[:1] + strings.ToLower(r.Method[1:])
	}
	if err != nil || !labSameURL(issued, &url.URL{Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}) || t.method != want {
		http.Error(w, "the service ticket was issued for another request", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "this lab host serves reads only", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	if dc := q.Get("dcPath"); dc != "" && dc != "ha-datacenter" {
		http.Error(w, "datacenter "+dc+" not found (a host's datacenter is ha-datacenter)", http.StatusNotFound)
		return
	}
	if labFolderGuard(w, r) {
		return
	}
	var root string
	for _, e := range Map.All("Datastore") {
		ds := e.(*Datastore)
		if ds.Name != q.Get("dsName") {
			continue
		}
		for _, m := range ds.Host {
			if m.Key == d.host.Self {
				root = ds.Info.GetDatastoreInfo().Url
			}
		}
	}
	if root == "" {
		http.Error(w, "datastore "+q.Get("dsName")+" is not mounted on this host", http.StatusNotFound)
		return
	}
	file := path.Join(root, path.Clean("/"+strings.TrimPrefix(r.URL.Path, "/folder/")))
	f, err := os.Open(file)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, path.Base(file), st.ModTime(), f)
}
