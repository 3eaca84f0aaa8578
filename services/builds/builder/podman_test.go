package builder

import (
	"strconv"
	"testing"
)

// TestStepMarker: markers are far beyond any build's time, differ between
// builds, and are the soft and hard limits of the engine's ulimit.
func TestStepMarker(t *testing.T) {
	a, b := stepMarker("b1"), stepMarker("b2")
	if a == b || a < markerBase || a >= markerBase+markerSpan || stepMarker("b1") != a {
		t.Errorf("markers %d, %d", a, b)
	}
	if got, want := podmanUlimit("b1"), "rttime="+strconv.FormatUint(a, 10)+":"+strconv.FormatUint(a, 10); got != want {
		t.Errorf("ulimit %q, want %q", got, want)
	}
}
