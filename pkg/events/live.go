package events

import (
	"fmt"
	"strings"
)

// liveRoot prefixes every live subject. Its first token differs from
// subjectRoot's, so the stream's filter "slipway.>" can never match a live
// message: what is published here (log lines that may hold secret values,
// abort signals) reaches whoever is subscribed at that moment and is then
// gone, instead of being kept for the stream's retention. It still starts
// with "slipway" so that an operator can grant a service "slipway-live.>"
// in NATS permissions next to "slipway.>".
const liveRoot = "slipway-live"

// LiveSubject returns the core NATS subject
// "slipway-live.<service>.<token>..." for live traffic: messages that are
// useful only to whoever listens right now (log lines for live tails,
// signals between replicas) and must not be kept as lifecycle events.
//
// service is a fixed name chosen by the caller and must pass the same
// check as an event's service (it panics otherwise, like a bad regexp
// literal). tokens usually carry data (team, project, job ids), so they
// are escaped rather than rejected: every byte outside letters, digits, '-'
// and '_' becomes "%XX", and an empty token becomes "%". A crafted id can
// therefore neither add tokens ('.') nor act as a wildcard ('*', '>'),
// and two different ids never share a subject. Live subjects are always
// literal; there is no wildcard form.
func LiveSubject(service string, tokens ...string) string {
	if err := checkToken(service); err != nil {
		panic(fmt.Sprintf("events: live subject service %q: %v", service, err))
	}
	var b strings.Builder
	b.WriteString(liveRoot)
	b.WriteByte('.')
	b.WriteString(service)
	for _, t := range tokens {
		b.WriteByte('.')
		escapeToken(&b, t)
	}
	return b.String()
}

// escapeToken writes t as one literal subject token (see LiveSubject).
func escapeToken(b *strings.Builder, t string) {
	if t == "" {
		b.WriteByte('%')
		return
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
}
