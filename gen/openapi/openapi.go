// Package openapi embeds the OpenAPI (v2) document generated from Slipway's
// protos, so the gateway serves exactly what the code was generated from.
package openapi

import _ "embed"

// Document is the merged OpenAPI document for every public Slipway API.
//
//go:embed slipway.swagger.json
var Document []byte

// PostmanCollection is Document as a Postman collection (v2.1), which
// `make generate` converts (cmd/postman-collection) right after buf writes
// Document, so the two always describe the same API.
//
//go:embed slipway.postman_collection.json
var PostmanCollection []byte
