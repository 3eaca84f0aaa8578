package builder

import (
	"strconv"
	"testing"
)

// TestStepMarker: markers are far beyond any build's time, differ between
// builds, and are found in /proc/<pid>/limits as the kernel writes it.
func TestStepMarker(t *testing.T) {
	a, b := stepMarker("b1"), stepMarker("b2")
	if a == b || a < markerBase || a >= markerBase+markerSpan || stepMarker("b1") != a {
		t.Errorf("markers %d, %d", a, b)
	}
	if got, want := podmanUlimit("b1"), "rttime="+strconv.FormatUint(a, 10)+":"+strconv.FormatUint(a, 10); got != want {
		t.Errorf("ulimit %q, want %q", got, want)
	}
	limits := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max msgqueue size         819200               819200               bytes     \n" +
		"Max realtime priority     0                    0                    \n" +
		"Max realtime timeout      4398046511105        4398046511105        us        \n"
	if soft, ok := rttimeSoft(limits); !ok || soft != "4398046511105" {
		t.Errorf("rttimeSoft = %q, %v", soft, ok)
	}
	if _, ok := rttimeSoft("Max open files 1024 1024 files\n"); ok {
		t.Error("rttimeSoft found a limit in a text without it")
	}
}
