// Command postman-collection writes the Postman collection (v2.1) of the
// OpenAPI document it reads: `make generate` runs it on
// gen/openapi/slipway.swagger.json after buf has written that.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/slipwayhq/slipway/pkg/postman"
)

func main() {
	in := flag.String("in", "gen/openapi/slipway.swagger.json", "the OpenAPI (v2) document to read")
	out := flag.String("out", "gen/openapi/slipway.postman_collection.json", "the Postman collection to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "postman-collection:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	doc, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	collection, err := postman.Convert(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(out, collection, 0o644)
}
