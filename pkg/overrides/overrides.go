// Package overrides is what a workload runs, in Northflank's terms: an
// image (or none, on the process driver) and the docker overrides
// (deployment.docker.configType with customEntrypoint and customCommand),
// checked against the runtime driver and mapped onto a runtime.Spec. Jobs
// and services run their workloads the same way, so the rules live here
// once.
package overrides

import (
	"fmt"
	"strings"

	"github.com/mattn/go-shellwords"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Docker override types (Northflank's deployment.docker.configType).
const (
	Default           = "default"
	Entrypoint        = "customEntrypoint"
	Command           = "customCommand"
	EntrypointCommand = "customEntrypointCustomCommand"
)

// Overrides is what a workload runs.
type Overrides struct {
	// Image to run; empty runs CustomCommand as a local process.
	Image string `json:"image,omitempty"`
	// ConfigType is one of the override types ("" is Default).
	ConfigType       string `json:"configType,omitempty"`
	CustomEntrypoint string `json:"customEntrypoint,omitempty"`
	CustomCommand    string `json:"customCommand,omitempty"`
}

// Check refuses overrides the runtime cannot run: overrides that
// contradict their type, and an image on the process driver or no image
// on an image driver. field prefixes the error paths ("deployment");
// noun names the workloads in messages ("job", "service").
func Check(o Overrides, driver, field, noun string) error {
	hasEntrypoint := o.ConfigType == Entrypoint || o.ConfigType == EntrypointCommand
	hasCommand := o.ConfigType == Command || o.ConfigType == EntrypointCommand
	switch {
	case hasEntrypoint && strings.TrimSpace(o.CustomEntrypoint) == "":
		return apierr.InvalidField(field+".docker.customEntrypoint", "is required with configType "+o.ConfigType)
	case !hasEntrypoint && o.CustomEntrypoint != "":
		return apierr.InvalidField(field+".docker.customEntrypoint", "is only used with configType customEntrypoint or customEntrypointCustomCommand")
	case hasCommand && strings.TrimSpace(o.CustomCommand) == "":
		return apierr.InvalidField(field+".docker.customCommand", "is required with configType "+o.ConfigType)
	case !hasCommand && o.CustomCommand != "":
		return apierr.InvalidField(field+".docker.customCommand", "is only used with configType customCommand or customEntrypointCustomCommand")
	}
	for name, s := range map[string]string{"customEntrypoint": o.CustomEntrypoint, "customCommand": o.CustomCommand} {
		if _, err := shellwords.Parse(s); err != nil {
			return apierr.InvalidField(field+".docker."+name, "cannot be split into words: "+err.Error())
		}
	}
	switch driver {
	case "process":
		if o.Image != "" {
			return apierr.InvalidField(field+".external.imagePath", fmt.Sprintf(
				`this Slipway runs %ss as local processes (runtime driver "process"), which cannot run images; give a custom command instead, or run Slipway with SLIPWAY_RUNTIME_DRIVER=docker`, noun))
		}
		if !hasCommand {
			return apierr.InvalidField(field+".docker.customCommand", fmt.Sprintf(
				"a %s without an image runs a custom command: set configType customCommand (or customEntrypointCustomCommand) and customCommand", noun))
		}
	default:
		if o.Image == "" {
			return apierr.InvalidField(field+".external.imagePath", fmt.Sprintf("is required: the %s runtime runs images", driver))
		}
	}
	return nil
}

// Apply sets spec's image, entrypoint and command from o. With an image
// the overrides replace the image's entrypoint and command (split into
// words like a shell would); without one, the command (after the
// entrypoint, when given) runs through /bin/sh -c. o must have passed
// Check.
func Apply(spec *runtime.Spec, o Overrides) {
	spec.Image = o.Image
	if o.Image == "" {
		script := o.CustomCommand
		if o.CustomEntrypoint != "" {
			script = o.CustomEntrypoint + " " + o.CustomCommand
		}
		spec.Command = []string{"/bin/sh", "-c", script}
		return
	}
	if o.CustomEntrypoint != "" {
		spec.Entrypoint, _ = shellwords.Parse(o.CustomEntrypoint) // checked on write
	}
	if o.CustomCommand != "" {
		spec.Command, _ = shellwords.Parse(o.CustomCommand)
	}
}
