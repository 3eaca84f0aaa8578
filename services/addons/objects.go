package addons

import (
	"net/http"
)

// HTTPDoer fetches an import's URL (*http.Client).
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

var defaultImportClient HTTPDoer = http.DefaultClient
