//go:build !unix

package httpserver

// openFileLimit is a conservative guess where the limit cannot be read.
func openFileLimit() uint64 { return 1024 }
