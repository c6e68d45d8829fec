// Lab extension: quiesce failures on demand, and the lab's wrapper of /sdk.
//
// The stock simulator accepts CreateSnapshot_Task with quiesce=true and always
// succeeds. A VM marked through /lab/quiesce-fail?vm=<moref>&fail=1 instead gets
// a task that fails with ApplicationQuiesceFault, as ESXi reports when VMware
// Tools cannot quiesce the guest (a broken VSS writer, say); the snapshot task
// (zz_vaultline_tasks.go) checks the mark. Snapshots without quiescing still
// succeed, so a backup can fall back to crash-consistent.

package simulator

import (
	"bytes"
	"io/ioutil"
	"net/http"
	"strings"
	"sync"
)

var labQuiesceFail sync.Map // VM moref value -> true

func labSetQuiesceFail(vm string, fail bool) {
	if fail {
		labQuiesceFail.Store(vm, true)
	} else {
		labQuiesceFail.Delete(vm)
	}
}

// LabWrapSDK wraps the server's handler: /folder guards, import uploads, service tickets, and snapshot tasks renamed to the lab's background versions.
func LabWrapSDK(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if labFolderGuard(w, r) || labVapiGuard(w, r) || labImportUpload(w, r) {
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
				// Snapshot tasks run in the background (zz_vaultline_tasks.go).
				if labAsyncRe.MatchString(s) {
					body = labRenameAsync(body)
					r.Body = ioutil.NopCloser(bytes.NewReader(body))
					r.ContentLength = int64(len(body))
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
