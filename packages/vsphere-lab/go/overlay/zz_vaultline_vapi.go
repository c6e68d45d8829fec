// Lab extension: the vAPI REST endpoints (/rest/com/vmware/cis/...) of vCenter,
// as govmomi's vapi simulator serves them (vcsim-lab imports it), with the
// login a real vCenter checks.
//
// Stock, the vAPI session accepts any non-empty user name and password; a real
// vCenter takes only the SSO account's. With -user set, the lab's vAPI login
// takes the same credentials as its SOAP Login, and answers others with 401 as
// vCenter does. Tagging (categories, tags, associations) is the stock simulator's.
//
// GET /lab/vapi-down?down=1 makes every vAPI request answer 503 (the vAPI endpoint
// service stopped while SOAP still answers, as a vCenter shows it after a failed
// service restart); down=0 brings it back.

package simulator

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// LabVapiUser is the account the vAPI login accepts (nil: any, as the stock simulator).
var LabVapiUser *url.Userinfo

var labVapiDown int32

// labVapiGuard answers a vAPI session login with wrong credentials, every vAPI request while the service is
// down, and /lab/vapi-down (true when it answered).
func labVapiGuard(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == "/lab/vapi-down" {
		down := r.URL.Query().Get("down") == "1"
		v := int32(0)
		if down {
			v = 1
		}
		atomic.StoreInt32(&labVapiDown, v)
		labJSON(w, http.StatusOK, map[string]bool{"down": down})
		return true
	}
	if strings.HasPrefix(r.URL.Path, "/rest/") && atomic.LoadInt32(&labVapiDown) == 1 {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("<html><body>503 Service Unavailable</body></html>"))
		return true
	}
	if LabVapiUser == nil || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/com/vmware/cis/session") || r.URL.Query().Get("~action") != "" {
		return false
	}
	u, p, ok := r.BasicAuth()
	want, _ := LabVapiUser.Password()
	if ok && subtle.ConstantTimeCompare([]byte(u), []byte(LabVapiUser.Username())) == 1 && subtle.ConstantTimeCompare([]byte(p), []byte(want)) == 1 {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte(`{"type":"com.vmware.vapi.std.errors.unauthenticated","value":{"messages":[{"id":"vapi.security.authentication.invalid","default_message":"Unable to authenticate user"}]}}`))
	return true
}
