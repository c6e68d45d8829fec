// vcsim-lab: Vaultline's lab vCenter. A small main around govmomi's simulator
// (Debian golang-github-vmware-govmomi-dev), built in GOPATH mode together with
// the overlay files in ../overlay that add CBT, frozen snapshots, export leases,
// HotAdd and SAN emulation. Started and stopped by packages/vsphere-lab/src.
package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	// vCenter's vAPI REST endpoints (tagging), registered with the simulator's other endpoints.
	_ "github.com/vmware/govmomi/vapi/simulator"
)

// newUUID is a random (version 4) UUID.
func newUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		log.Fatalf("random: %s", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	listen := flag.String("l", "127.0.0.1:0", "listen address (port 0 = any free port)")
	certFile := flag.String("cert", "", "TLS certificate (PEM); TLS is on when set")
	keyFile := flag.String("key", "", "TLS key (PEM)")
	user := flag.String("user", "", "username:password accepted by Login (default: any non-empty)")
	envFile := flag.String("env", "", "write the startup JSON to this file")
	byid := flag.String("byid", "", "folder for HotAdd wwn-0x<uuid> links (empty = HotAdd emulation off)")
	proxy := flag.String("proxy", "vaultline-proxy", "name of the proxy (appliance) VM")
	hosts := flag.Int("hosts", 2, "hosts in the cluster")
	esx := flag.Bool("esx", false, "be a standalone ESXi host instead of a vCenter")
	direct := flag.Bool("direct-hosts", false, "give each host a loopback address and HTTPS /folder on port 443 (root)")
	pageMax := flag.Int("page-max", 100, "PropertyCollector pages hold at most this many objects (0: no cap), as vCenter's policy caps them")
	trace := flag.Bool("trace", false, "trace SOAP to stderr")
	var dss multiFlag
	flag.Var(&dss, "ds", "datastore NAME=PATH[,naa=ID][,type=vsan|vvol][,delta=vmfsSparse] (repeatable)")
	flag.Parse()

	simulator.Trace = *trace
	simulator.LabConfig.ByIDDir = *byid
	simulator.LabConfig.ProxyVM = *proxy

	var model *simulator.Model
	if *esx {
		// A standalone ESXi host (HostAgent API, ha-datacenter), as registered without a vCenter.
		model = simulator.ESX()
		model.Datastore = 0
		model.Machine = 0
		model.Autostart = false
	} else {
		model = simulator.VPX()
		model.Datacenter = 1
		model.Cluster = 1
		model.ClusterHost = *hosts
		model.Host = 0
		model.Datastore = 0
		model.Machine = 0
		model.Portgroup = 1
		model.Autostart = false
	}
	// Every real vCenter has its own instance UUID (ServiceContent.about.instanceUuid); govmomi's
	// simulator has one constant for all. Each lab gets a random one, so two labs are two vCenters.
	if !*esx {
		model.ServiceContent.About.InstanceUuid = newUUID()
	}
	if err := model.Create(); err != nil {
		log.Fatalf("create model: %s", err)
	}
	// Every real host has its own hardware UUID; the simulator gives all of them one. (A standalone
	// ESXi host is known by it, having no vCenter instance UUID.)
	simulator.LabGiveHostsUUIDs(newUUID)
	// RetrievePropertiesEx answers in pages behind a token, as vSphere does (the simulator sends everything at once).
	simulator.LabPaging.PageMax = *pageMax
	simulator.LabPagedPropertyCollector()

	var specs []simulator.LabDatastore
	for _, d := range dss {
		spec := simulator.LabDatastore{}
		parts := strings.Split(d, ",")
		kv := strings.SplitN(parts[0], "=", 2)
		if len(kv) != 2 {
			log.Fatalf("bad -ds %q", d)
		}
		spec.Name, spec.Path = kv[0], kv[1]
		for _, p := range parts[1:] {
			if strings.HasPrefix(p, "naa=") {
				spec.NAA = strings.TrimPrefix(p, "naa=")
			}
			if strings.HasPrefix(p, "delta=") {
				spec.Delta = strings.TrimPrefix(p, "delta=")
			}
			if strings.HasPrefix(p, "type=") {
				spec.Type = strings.TrimPrefix(p, "type=")
			}
		}
		specs = append(specs, spec)
	}
	if err := simulator.LabCreateDatastores(specs); err != nil {
		log.Fatalf("datastores: %s", err)
	}
	if *direct {
		if err := simulator.LabStartDirectHosts(); err != nil {
			log.Fatalf("direct hosts: %s", err)
		}
	}

	u := &url.URL{Host: *listen}
	if *user != "" {
		up := strings.SplitN(*user, ":", 2)
		if len(up) != 2 {
			log.Fatalf("-user must be username:password")
		}
		u.User = url.UserPassword(up[0], up[1])
		simulator.LabVapiUser = u.User
	}
	model.Service.Listen = u
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			log.Fatalf("tls: %s", err)
		}
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	model.Service.RegisterEndpoints = true
	s := model.Service.NewServer()
	// Requests are served by Config.Handler, read per request: wrapping it here, before
	// the address is published, makes every request go through the lab's quiesce hook.
	s.Server.Config.Handler = simulator.LabWrapSDK(s.Server.Config.Handler)

	out := map[string]interface{}{
		"url": strings.Replace(s.URL.String(), s.URL.User.String()+"@", "", 1),
		"pid": os.Getpid(),
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	if *envFile != "" {
		tmp := *envFile + ".tmp"
		if err := ioutil.WriteFile(tmp, b, 0600); err == nil {
			_ = os.Rename(tmp, *envFile)
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	simulator.LabShutdown()
	s.Close()
	log.Printf("vcsim-lab stopped")
}
