// Lab extension: quiesce failures on demand.
//
// The stock simulator accepts CreateSnapshot_Task with quiesce=true and always
// succeeds. A VM marked through /lab/quiesce-fail?vm=<moref>&fail=1 instead gets
// a task that fails with ApplicationQuiesceFault, as ESXi reports when VMware
// Tools cannot quiesce the guest (a broken VSS writer, say). Snapshots without
// quiescing still succeed, so a backup can fall back to crash-consistent.

package simulator

import (
	"bytes"
	"fmt"
	"io/ioutil"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/vmware/govmomi/vim25/types"
)

var labQuiesceFail sync.Map // VM moref value -> true

var labThisRe = regexp.MustCompile(`<_this[^>]*>([^<]+)</_this>`)

func labSetQuiesceFail(vm string, fail bool) {
	if fail {
		labQuiesceFail.Store(vm, true)
	} else {
		labQuiesceFail.Delete(vm)
	}
}

// LabWrapSDK wraps the server's handler so quiesced snapshots of marked VMs fail.
func LabWrapSDK(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if labFolderGuard(w, r) {
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == "/sdk" {
			body, err := ioutil.ReadAll(r.Body)
			if err == nil {
				r.Body = ioutil.NopCloser(bytes.NewReader(body))
				s := string(body)
				if strings.Contains(s, "AcquireGenericServiceTicket") && labIssueTicket(w, r, s, next) {
					return
				}
				r.Body = ioutil.NopCloser(bytes.NewReader(body))
				if strings.Contains(s, "CreateSnapshot_Task") && strings.Contains(s, "<quiesce>true</quiesce>") {
					if m := labThisRe.FindStringSubmatch(s); m != nil {
						if _, marked := labQuiesceFail.Load(m[1]); marked {
							if obj := Map.Get(types.ManagedObjectReference{Type: "VirtualMachine", Value: m[1]}); obj != nil {
								task := CreateTask(obj, "createSnapshot", func(*Task) (types.AnyType, types.BaseMethodFault) {
									return nil, &types.ApplicationQuiesceFault{}
								})
								ref := task.Run()
								w.Header().Set("Content-Type", "text/xml; charset=utf-8")
								fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><CreateSnapshot_TaskResponse xmlns="urn:vim25"><returnval type="Task">%s</returnval></CreateSnapshot_TaskResponse></soapenv:Body></soapenv:Envelope>`, ref.Value)
								return
							}
						}
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
