// Package slug derives resource ids from display names the way Northflank
// does: "My App" becomes "my-app".
package slug

import "strings"

// Make lowercases name, keeps ASCII letters and digits, and joins every
// other run of characters into a single hyphen, trimmed at both ends. It
// returns "" when name has no letter or digit.
func Make(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	pendingHyphen := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if pendingHyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			pendingHyphen = false
			b.WriteRune(r)
			continue
		}
		pendingHyphen = true
	}
	return b.String()
}
