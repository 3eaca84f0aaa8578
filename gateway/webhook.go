package gateway

// Webhook routes: POST /v1/<path> of every component.Webhook, passed to
// its RPC as slipway.api.v1.WebhookRequest with the body exactly as sent
// (a git host signs those bytes; grpc-gateway would decode and re-encode
// them) and the headers, so the component checks the caller itself.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/requestid"
)

// withheldHeaders never reach a webhook's RPC: a webhook is not
// authenticated by the API's credentials, and they are no business of it.
var withheldHeaders = map[string]bool{"authorization": true, "cookie": true, "proxy-authorization": true}

// webhookHandler serves one component.Webhook.
func (g *Gateway) webhookHandler(hook component.Webhook, conn grpc.ClientConnInterface) gwruntime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		body, err := io.ReadAll(r.Body) // limitBody bounded it
		if err != nil {
			g.handleError(r.Context(), nil, nil, w, r, err)
			return
		}
		req := &apiv1.WebhookRequest{Params: params, Headers: map[string]string{}, Body: body}
		for name, values := range r.Header {
			name = strings.ToLower(name)
			if !withheldHeaders[name] {
				req.Headers[name] = strings.Join(values, ", ")
			}
		}
		ctx := r.Context()
		if id := requestid.FromContext(ctx); id != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, requestid.MetadataKey, id)
		}
		var resp apiv1.WebhookResponse
		if err := conn.Invoke(ctx, hook.Method, req, &resp); err != nil {
			g.handleError(r.Context(), nil, nil, w, r, err)
			return
		}
		data, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(&resp)
		var out bytes.Buffer
		if err == nil {
			// protojson varies its spacing on purpose; the API's is fixed.
			err = json.Compact(&out, data)
		}
		if err != nil {
			g.handleError(r.Context(), nil, nil, w, r, err)
			return
		}
		writeData(w, http.StatusOK, append(append([]byte(`{"data":`), out.Bytes()...), "}\n"...))
	}
}

// isWebhook reports whether path is one of the webhook routes.
func (g *Gateway) isWebhook(path string) bool { return matchRoutes(g.webhooks, path) }

// isDownload reports whether path is one of the download routes.
func (g *Gateway) isDownload(path string) bool { return matchRoutes(g.downloads, path) }

// matchRoutes reports whether path matches one of routes' segments
// ("{name}" matching any one segment).
func matchRoutes(routes [][]string, path string) bool {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for _, route := range routes {
		if len(route) != len(segs) {
			continue
		}
		match := true
		for i, r := range route {
			if !strings.HasPrefix(r, "{") && r != segs[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
