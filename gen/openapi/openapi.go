// Package openapi embeds the OpenAPI (v2) document generated from Slipway's
// protos, so the gateway serves exactly what the code was generated from.
package openapi

import _ "embed"

// Document is the merged OpenAPI document for every public Slipway API.
//
//go:embed slipway.swagger.json
var Document []byte
