package addons_test

import (
	"testing"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
