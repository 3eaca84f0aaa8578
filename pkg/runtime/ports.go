package runtime

import (
	"fmt"
	"strings"
)

// ProtocolTCP and ProtocolUDP are the values of Port.Protocol ("" is TCP).
const (
	ProtocolTCP = "tcp"
	ProtocolUDP = "udp"
)

// ValidatePorts checks a Spec's ports the way every driver does: each has
// a name of letters, digits, '-' and '_' (it names an environment
// variable, PORT_<NAME>) unique within the Spec, a number from 1 to 65535
// and a protocol of "tcp", "udp" or "" (tcp), and no two listen on the
// same number and protocol.
func ValidatePorts(ports []Port) error {
	names := map[string]bool{}
	envs := map[string]string{}
	numbers := map[string]string{}
	for i, p := range ports {
		if p.Name == "" {
			return fmt.Errorf("port %d has no name", i+1)
		}
		for _, r := range p.Name {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("port name %q: only letters, digits, '-' and '_' are allowed", p.Name)
			}
		}
		if names[p.Name] {
			return fmt.Errorf("port name %q is used twice", p.Name)
		}
		names[p.Name] = true
		env := PortEnvName(p.Name)
		if other, dup := envs[env]; dup {
			return fmt.Errorf("port names %q and %q both give the variable %s", other, p.Name, env)
		}
		envs[env] = p.Name
		if p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("port %q: number %d is not between 1 and 65535", p.Name, p.Port)
		}
		proto := p.Protocol
		switch proto {
		case "":
			proto = ProtocolTCP
		case ProtocolTCP, ProtocolUDP:
		default:
			return fmt.Errorf("port %q: protocol %q is not %q or %q", p.Name, p.Protocol, ProtocolTCP, ProtocolUDP)
		}
		key := fmt.Sprintf("%d/%s", p.Port, proto)
		if other, dup := numbers[key]; dup {
			return fmt.Errorf("ports %q and %q both listen on %s", other, p.Name, key)
		}
		numbers[key] = p.Name
	}
	return nil
}

// PortEnvName is the variable that tells a workload the number of its port
// name: PORT_ and the name upper-cased, each '-' as '_' ("p-01": PORT_P_01).
func PortEnvName(name string) string {
	return "PORT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}
