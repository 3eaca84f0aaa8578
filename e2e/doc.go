// Package e2e holds Slipway's end-to-end tests. They build the real
// binary, start it on free ports with a fresh data directory, and talk to it
// over the network: with plain net/http for the wire rules, and with the
// official @northflank/js-client (the suite in js/, run by `node --test`) to
// prove that the client works against Slipway by changing only the host.
//
// Run them with `make test` (which installs the test dependencies and runs
// `npm ci` in e2e/js) or, once that has been done, `go test ./e2e/`.
package e2e
