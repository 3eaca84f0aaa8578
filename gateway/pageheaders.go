package gateway

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	"github.com/slipwayhq/slipway/pkg/paging"
)

// Pagination headers, ComputeStacks' convention, on every list response:
// Per-Page is the page size the list used, Total the items in the whole
// list, and Link (RFC 8288) the next page's absolute URL with rel="next",
// only when there is one. Clients that page by headers follow Link until
// it is absent; the JSON pagination block says the same in the body.
const (
	headerPerPage = "Per-Page"
	headerTotal   = "Total"
	headerLink    = "Link"
)

// exchange is what the outer middleware (instrument) keeps of a request
// for the parts of the gateway that run deeper, where the request is no
// longer at hand: the mux fills in the matched route, and a list's
// pagination headers read the URL the client asked for.
type exchange struct {
	route string
	req   *http.Request
}

// exchangeOf returns the exchange instrument put in ctx, or nil.
func exchangeOf(ctx context.Context) *exchange {
	x, _ := ctx.Value(routeKey{}).(*exchange)
	return x
}

// pageHeaders is a grpc-gateway ForwardResponseOption: for a response
// that carries a Pagination (every list), it sets Per-Page, Total and, when
// another page follows, Link. It runs before the envelope marshals the
// response (and lifts pagination out of "data"), so the field is still
// there to read.
func pageHeaders(ctx context.Context, w http.ResponseWriter, msg proto.Message) error {
	p := paginationOf(msg)
	if p == nil {
		return nil
	}
	x := exchangeOf(ctx)
	if x == nil || x.req == nil {
		return nil
	}
	h := w.Header()
	query := x.req.URL.Query()
	h.Set(headerPerPage, strconv.Itoa(perPageOf(query)))
	if p.Total != nil {
		h.Set(headerTotal, strconv.Itoa(int(p.GetTotal())))
	}
	if next := nextPage(x.req, query, p); next != "" {
		h.Set(headerLink, "<"+next+`>; rel="next"`)
	}
	return nil
}

// paginationOf returns msg's pagination field, or nil when msg is not a
// list response or its service set none.
func paginationOf(msg proto.Message) *apiv1.Pagination {
	if msg == nil {
		return nil
	}
	m := msg.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("pagination")
	if fd == nil || fd.Kind() != protoreflect.MessageKind || fd.Message().FullName() != paginationName || !m.Has(fd) {
		return nil
	}
	p, _ := m.Get(fd).Message().Interface().(*apiv1.Pagination)
	return p
}

// perPageOf is the page size a list used: the request's per_page (or
// perPage, the name grpc-gateway also takes), which the service validated
// (1 to 100) before it answered, else the default every list applies.
func perPageOf(query url.Values) int {
	for _, name := range []string{"per_page", "perPage"} {
		if n, err := strconv.Atoi(query.Get(name)); err == nil && n > 0 {
			return n
		}
	}
	return paging.DefaultPerPage
}

// nextPage is the absolute URL of the page after p, or "" on the last
// page. It is the request's own URL (scheme, host, path and every other
// query parameter kept) with the page's cursor; a list that pages without
// cursors gets the next page number instead.
func nextPage(r *http.Request, query url.Values, p *apiv1.Pagination) string {
	if !p.GetHasNextPage() {
		return ""
	}
	switch {
	case p.Cursor != nil:
		// The cursor says where the next page starts; a page number
		// alongside it would be ignored (a cursor wins), so drop it.
		query.Del("page")
		query.Set("cursor", p.GetCursor())
	default:
		page, err := strconv.Atoi(query.Get("page"))
		if err != nil || page < 1 {
			page = 1
		}
		query.Set("page", strconv.Itoa(page+1))
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: query.Encode()}
	return u.String()
}
