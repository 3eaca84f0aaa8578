package gateway

// Download routes: GET /v1/<path> of every component.Download, served from
// a server-streaming RPC whose chunks are written as the response body (a
// file, not JSON). The caller holds a link the component signed; the RPC
// checks it.

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/requestid"
)

// downloadHandler serves one component.Download.
func (g *Gateway) downloadHandler(d component.Download, conn grpc.ClientConnInterface) gwruntime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		req := &apiv1.DownloadRequest{Params: params, Headers: map[string]string{}}
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
		stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, d.Method)
		if err == nil {
			if err = stream.SendMsg(req); err == nil {
				err = stream.CloseSend()
			}
		}
		var first apiv1.DownloadChunk
		if err == nil {
			err = stream.RecvMsg(&first)
		}
		if err != nil {
			// Nothing written yet: an error envelope like any other.
			g.handleError(r.Context(), nil, nil, w, r, err)
			return
		}
		ct := first.GetContentType()
		if ct == "" {
			ct = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ct)
		if name := first.GetFilename(); name != "" {
			w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		}
		if first.GetSize() > 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(first.GetSize(), 10))
		}
		for k, v := range first.GetHeaders() {
			w.Header().Set(k, v)
		}
		w.WriteHeader(http.StatusOK)
		chunk := &first
		for {
			if _, err := w.Write(chunk.GetData()); err != nil {
				return // the client went away
			}
			chunk = &apiv1.DownloadChunk{}
			if err := stream.RecvMsg(chunk); err != nil {
				if !errors.Is(err, io.EOF) {
					// Headers are sent: cutting the body short (a length
					// mismatch) is all that is left to say.
					g.log.Warn("download stream broke", "route", d.Path, "error", err)
					panic(http.ErrAbortHandler)
				}
				return
			}
		}
	}
}
