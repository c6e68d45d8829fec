// Vaultline lab extension: PropertyCollector paging as vCenter does it.
//
// govmomi's simulator ignores RetrieveOptions.maxObjects and answers every
// RetrievePropertiesEx with all objects at once, so a client's
// ContinueRetrievePropertiesEx loop never runs against it (and the method is
// missing). vCenter returns at most maxObjects per page, and its own policy may
// cap a page even when maxObjects is unset or larger; the rest waits behind a
// token that ContinueRetrievePropertiesEx turns into the next page and
// CancelRetrievePropertiesEx discards. The lab caps every page at
// LabPaging.PageMax objects (default 100, -page-max), so a client that forgets
// the token loses objects here as it would against a large vCenter.
//
// The root PropertyCollector is replaced by labPropertyCollector, which embeds
// the simulator's own: every other method (filters, WaitForUpdatesEx, ...) is
// the simulator's. The simulator makes one instance per session by reflection,
// so each session pages on its own; a token is only good in the session that
// got it.

package simulator

import (
	"crypto/rand"
	"encoding/hex"
	"sync"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// LabPaging is set by the lab main before the server starts.
var LabPaging = struct {
	PageMax int // objects per page at most, whatever maxObjects asks (0: no cap)
}{PageMax: 100}

// labPagingStats counts what clients did with pages (GET /lab/paging).
type labPagingStats struct {
	Pages     int `json:"pages"`     // pages handed out, first pages included
	Continues int `json:"continues"` // ContinueRetrievePropertiesEx calls answered
	Cancels   int `json:"cancels"`   // CancelRetrievePropertiesEx calls answered
	Open      int `json:"open"`      // tokens still waiting to be continued or cancelled
}

// labPages holds what is left of each paged result, by token, with the session that owns it.
var labPages = struct {
	sync.Mutex
	rest  map[string]labRest
	stats labPagingStats
}{rest: map[string]labRest{}}

type labRest struct {
	session    string
	objects    []types.ObjectContent
	maxObjects int32 // what the first call asked for: every page of the result keeps it
}

type labPropertyCollector struct {
	PropertyCollector
}

// LabPagedPropertyCollector puts the paging collector in place of the simulator's root one.
func LabPagedPropertyCollector() {
	ref := Map.content().PropertyCollector
	orig := Map.Get(ref).(*PropertyCollector)
	pc := &labPropertyCollector{PropertyCollector: *orig}
	Map.Put(pc)
}

func labSessionKey(ctx *Context) string {
	if ctx.Session == nil {
		return ""
	}
	return ctx.Session.Key
}

// labPage cuts objects into the first page and the token for the rest ("" when none is left).
func labPage(ctx *Context, objects []types.ObjectContent, maxObjects int32) types.RetrieveResult {
	size := len(objects)
	if maxObjects > 0 && int(maxObjects) < size {
		size = int(maxObjects)
	}
	if LabPaging.PageMax > 0 && LabPaging.PageMax < size {
		size = LabPaging.PageMax
	}
	labPages.Lock()
	defer labPages.Unlock()
	labPages.stats.Pages++
	if size >= len(objects) {
		return types.RetrieveResult{Objects: objects}
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	labPages.rest[token] = labRest{session: labSessionKey(ctx), objects: objects[size:], maxObjects: maxObjects}
	labPages.stats.Open = len(labPages.rest)
	return types.RetrieveResult{Token: token, Objects: objects[:size]}
}

func (pc *labPropertyCollector) RetrievePropertiesEx(ctx *Context, r *types.RetrievePropertiesEx) soap.HasFault {
	body := pc.PropertyCollector.RetrievePropertiesEx(ctx, r).(*methods.RetrievePropertiesExBody)
	if body.Res == nil || body.Res.Returnval == nil {
		return body
	}
	page := labPage(ctx, body.Res.Returnval.Objects, r.Options.MaxObjects)
	body.Res.Returnval = &page
	return body
}

// labTake removes and returns the rest behind token, or a fault when the token is unknown or another session's.
func labTake(ctx *Context, token string) (labRest, *soap.Fault) {
	labPages.Lock()
	defer labPages.Unlock()
	rest, ok := labPages.rest[token]
	if !ok || rest.session != labSessionKey(ctx) {
		return labRest{}, Fault("invalid token: unknown, already used up or cancelled, or another session's", &types.InvalidArgument{InvalidProperty: "token"})
	}
	delete(labPages.rest, token)
	labPages.stats.Open = len(labPages.rest)
	return rest, nil
}

func (pc *labPropertyCollector) ContinueRetrievePropertiesEx(ctx *Context, r *types.ContinueRetrievePropertiesEx) soap.HasFault {
	body := &methods.ContinueRetrievePropertiesExBody{}
	rest, fault := labTake(ctx, r.Token)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	page := labPage(ctx, rest.objects, rest.maxObjects)
	labPages.Lock()
	labPages.stats.Continues++
	labPages.Unlock()
	body.Res = &types.ContinueRetrievePropertiesExResponse{Returnval: page}
	return body
}

func (pc *labPropertyCollector) CancelRetrievePropertiesEx(ctx *Context, r *types.CancelRetrievePropertiesEx) soap.HasFault {
	body := &methods.CancelRetrievePropertiesExBody{}
	if _, fault := labTake(ctx, r.Token); fault != nil {
		body.Fault_ = fault
		return body
	}
	labPages.Lock()
	labPages.stats.Cancels++
	labPages.Unlock()
	body.Res = &types.CancelRetrievePropertiesExResponse{}
	return body
}

// labPagingReport is GET /lab/paging: the counters so far (and ?reset=1 sets them back to zero).
func labPagingReport(reset bool) labPagingStats {
	labPages.Lock()
	defer labPages.Unlock()
	s := labPages.stats
	if reset {
		labPages.stats = labPagingStats{Open: len(labPages.rest)}
	}
	return s
}
