package rpcserver

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

// Why a string is refused, as the field details say it.
const (
	badUTF8 = "must be valid UTF-8"
	hasNUL  = "must not contain NUL characters"
)

// CheckRequest refuses a request with a string that no store can keep: a
// NUL character (PostgreSQL's text types cannot hold one) or bytes that are
// not UTF-8 (which protobuf cannot marshal, and PostgreSQL refuses too).
// It walks every string of the message (fields, list elements, map keys and
// values, nested messages; bytes fields are binary and left alone) and
// answers the validation error naming each offending field by the JSON path
// the client sent (the path of an HTTP body mapped to one field, such as
// "spec", drops that field's name). It returns nil for anything that is not
// a proto message.
//
// The chain runs it on every RPC before anything else, so every service,
// and every store behind one, sees only strings both database engines
// accept, whatever the engine; the gateway runs it again before a request
// leaves for a service over the network, where a string that is not UTF-8
// would otherwise fail to marshal as an internal error.
func CheckRequest(fullMethod string, req any) error {
	msg, ok := req.(proto.Message)
	if !ok || clean(msg.ProtoReflect()) {
		return nil
	}
	var fields map[string][]string
	checkStrings(msg.ProtoReflect(), "", func(path, problem string) {
		if fields == nil {
			fields = map[string][]string{}
		}
		if body := bodyField(fullMethod); body != "" {
			path = strings.TrimPrefix(path, jsonPath(body)+".")
		}
		fields[path] = append(fields[path], problem)
	})
	if fields == nil {
		return nil
	}
	for _, problems := range fields {
		sort.Strings(problems)
	}
	return apierr.Invalid("request validation failed", fields)
}

// clean reports whether every string of m is acceptable. It is the check
// every RPC pays (twice through the gateway), so it walks the fields by
// index rather than through Range, whose callback allocates: only a
// message with a map, or with a bad string (which checkStrings then
// describes), costs allocations.
func clean(m protoreflect.Message) bool {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			ok := true
			keyIsString := fd.MapKey().Kind() == protoreflect.StringKind
			val := fd.MapValue()
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				ok = (!keyIsString || stringProblem(k.String()) == "") && cleanValue(val, mv)
				return ok
			})
			if !ok {
				return false
			}
		case fd.IsList():
			list := v.List()
			for j := range list.Len() {
				if !cleanValue(fd, list.Get(j)) {
					return false
				}
			}
		default:
			if !cleanValue(fd, v) {
				return false
			}
		}
	}
	return true
}

// cleanValue is clean for one value of field fd.
func cleanValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return stringProblem(v.String()) == ""
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return clean(v.Message())
	}
	return true
}

// checkStrings reports every bad string of m under prefix.
func checkStrings(m protoreflect.Message, prefix string, report func(path, problem string)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		path := prefix + fd.JSONName()
		switch {
		case fd.IsMap():
			keyIsString := fd.MapKey().Kind() == protoreflect.StringKind
			val := fd.MapValue()
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				// A key is the user's own text (an environment variable's
				// name): quoted verbatim, as validation errors name it.
				keyPath := path + "[" + k.String() + "]"
				if keyIsString {
					keyPath = path + "[" + strconv.Quote(k.String()) + "]"
					if problem := stringProblem(k.String()); problem != "" {
						report(keyPath, problem)
					}
				}
				checkValue(val, mv, keyPath, report)
				return true
			})
		case fd.IsList():
			list := v.List()
			for i := range list.Len() {
				checkValue(fd, list.Get(i), path+"["+strconv.Itoa(i)+"]", report)
			}
		default:
			checkValue(fd, v, path, report)
		}
		return true
	})
}

// checkValue checks one value of field fd: a string, or a message to walk.
func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string, report func(path, problem string)) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if problem := stringProblem(v.String()); problem != "" {
			report(path, problem)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		checkStrings(v.Message(), path+".", report)
	}
}

// ValidString reports whether CheckRequest accepts s: UTF-8 without NUL
// characters. For strings that reach a service outside a request message,
// such as the Authorization header.
func ValidString(s string) bool { return stringProblem(s) == "" }

// stringProblem says what is wrong with s, or "".
func stringProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return badUTF8
	case strings.IndexByte(s, 0) >= 0:
		return hasNUL
	}
	return ""
}
