package overrides_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/overrides"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name   string
		o      overrides.Overrides
		driver string
		field  string // the field the error names; "" for none
	}{
		{"command on process", overrides.Overrides{ConfigType: overrides.Command, CustomCommand: "sleep 1"}, "process", ""},
		{"image on process", overrides.Overrides{Image: "nginx", ConfigType: overrides.Command, CustomCommand: "x"}, "process", "deployment.external.imagePath"},
		{"no command on process", overrides.Overrides{}, "process", "deployment.docker.customCommand"},
		{"image on docker", overrides.Overrides{Image: "nginx"}, "docker", ""},
		{"no image on docker", overrides.Overrides{ConfigType: overrides.Command, CustomCommand: "x"}, "docker", "deployment.external.imagePath"},
		{"command without its type", overrides.Overrides{Image: "nginx", CustomCommand: "x"}, "docker", "deployment.docker.customCommand"},
		{"entrypoint missing", overrides.Overrides{Image: "nginx", ConfigType: overrides.Entrypoint}, "docker", "deployment.docker.customEntrypoint"},
		{"unsplittable", overrides.Overrides{Image: "nginx", ConfigType: overrides.Command, CustomCommand: `echo "open`}, "docker", "deployment.docker.customCommand"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := overrides.Check(c.o, c.driver, "deployment", "service")
			if c.field == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			e := apierr.From(err)
			if e == nil || e.Reason != apierr.ReasonValidationFailed || len(e.Fields[c.field]) == 0 {
				t.Fatalf("Check = %v, want VALIDATION_FAILED naming %s", err, c.field)
			}
			if c.name == "image on process" && !strings.Contains(e.Fields[c.field][0], "runs services as local processes") {
				t.Errorf("message %q does not name the workloads", e.Fields[c.field][0])
			}
		})
	}
}

func TestApply(t *testing.T) {
	var spec runtime.Spec
	overrides.Apply(&spec, overrides.Overrides{ConfigType: overrides.EntrypointCommand, CustomEntrypoint: "exec", CustomCommand: "sleep 1"})
	if spec.Image != "" || !slices.Equal(spec.Command, []string{"/bin/sh", "-c", "exec sleep 1"}) {
		t.Errorf("process: %+v", spec)
	}
	spec = runtime.Spec{}
	overrides.Apply(&spec, overrides.Overrides{Image: "nginx", ConfigType: overrides.EntrypointCommand, CustomEntrypoint: "/bin/sh -c", CustomCommand: `"echo hi"`})
	if spec.Image != "nginx" || !slices.Equal(spec.Entrypoint, []string{"/bin/sh", "-c"}) || !slices.Equal(spec.Command, []string{"echo hi"}) {
		t.Errorf("image: %+v", spec)
	}
}
