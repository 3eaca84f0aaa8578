package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

// decodeJSON decodes a request body into msg strictly: the body must be one
// JSON object, every key must name a field, and every value must have the
// field's JSON type. Problems come back as a 400 naming the field, instead
// of protojson's messages (which quote parser internals). An empty body
// decodes to io.EOF, which the generated handlers treat as "no body".
func decodeJSON(data []byte, msg proto.Message) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return io.EOF
	}
	if !utf8.Valid(data) {
		// encoding/json would quietly turn the bad bytes into U+FFFD and
		// protojson refuse them without saying where; JSON is UTF-8 (RFC
		// 8259), so say that.
		return apierr.Invalid("request body is not valid JSON", map[string][]string{"body": {
			fmt.Sprintf("must be UTF-8: invalid byte at offset %d", invalidUTF8At(data))}})
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return apierr.Invalid("request body is not valid JSON", map[string][]string{"body": {syntaxMessage(err)}})
	}
	if dec.More() {
		return apierr.Invalid("request body is not valid JSON", map[string][]string{"body": {"unexpected data after the JSON object"}})
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return apierr.Invalid("request body must be a JSON object", map[string][]string{"body": {"must be a JSON object"}})
	}
	if fields := checkMessage(msg.ProtoReflect().Descriptor(), obj, ""); len(fields) > 0 {
		return apierr.Invalid("request body has invalid fields", fields)
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(data, msg); err != nil {
		// The shape check passed, so this is a value protojson rejects
		// within its type (an out-of-range number, a malformed timestamp).
		return apierr.Invalid("request body has an invalid value", map[string][]string{"body": {"a value is out of range or malformed"}})
	}
	return nil
}

// invalidUTF8At is the offset of the first byte of data that does not
// start a valid UTF-8 sequence.
func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(data)
}

func syntaxMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of JSON"
	}
	return "invalid JSON"
}

// checkMessage checks obj against md and returns problems by field path.
func checkMessage(md protoreflect.MessageDescriptor, obj map[string]any, prefix string) map[string][]string {
	var problems map[string][]string
	add := func(path, msg string) {
		if problems == nil {
			problems = map[string][]string{}
		}
		problems[path] = append(problems[path], msg)
	}
	fields := md.Fields()
	for key, value := range obj {
		path := prefix + key
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(key))
		}
		if fd == nil {
			add(path, "unknown field")
			continue
		}
		if value == nil {
			continue // null means "not set", as in protojson
		}
		for p, msgs := range checkField(fd, value, path) {
			for _, m := range msgs {
				add(p, m)
			}
		}
	}
	return problems
}

func checkField(fd protoreflect.FieldDescriptor, value any, path string) map[string][]string {
	switch {
	case fd.IsList():
		arr, ok := value.([]any)
		if !ok {
			return one(path, "must be an array")
		}
		out := map[string][]string{}
		for i, el := range arr {
			for p, m := range checkSingular(fd, el, fmt.Sprintf("%s[%d]", path, i)) {
				out[p] = append(out[p], m...)
			}
		}
		return out
	case fd.IsMap():
		obj, ok := value.(map[string]any)
		if !ok {
			return one(path, "must be an object")
		}
		out := map[string][]string{}
		for k, el := range obj {
			// The key is the user's own text: quoted verbatim, as the
			// services' validation names it (runtimeEnvironment["KEY"]).
			for p, m := range checkSingular(fd.MapValue(), el, path+"["+strconv.Quote(k)+"]") {
				out[p] = append(out[p], m...)
			}
		}
		return out
	}
	return checkSingular(fd, value, path)
}

func checkSingular(fd protoreflect.FieldDescriptor, value any, path string) map[string][]string {
	if value == nil {
		return nil
	}
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := value.(string); !ok {
			return one(path, "must be a string")
		}
	case protoreflect.BoolKind:
		if _, ok := value.(bool); !ok {
			return one(path, "must be a boolean")
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, ok := value.(json.Number)
		if !ok {
			return one(path, "must be an integer")
		}
		if strings.ContainsAny(n.String(), ".eE") {
			if f, err := n.Float64(); err != nil || f != float64(int64(f)) {
				return one(path, "must be an integer")
			}
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if _, ok := value.(json.Number); !ok {
			return one(path, "must be a number")
		}
	case protoreflect.EnumKind:
		s, ok := value.(string)
		if !ok {
			return one(path, "must be a string")
		}
		if fd.Enum().Values().ByName(protoreflect.Name(s)) == nil {
			return one(path, "is not an allowed value")
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkMessageValue(fd.Message(), value, path)
	}
	return nil
}

// checkMessageValue handles the well-known types whose JSON form is not an
// object, then recurses into ordinary messages.
func checkMessageValue(md protoreflect.MessageDescriptor, value any, path string) map[string][]string {
	switch md.FullName() {
	case "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
		"google.protobuf.StringValue", "google.protobuf.BytesValue":
		if _, ok := value.(string); !ok {
			return one(path, "must be a string")
		}
		return nil
	case "google.protobuf.BoolValue":
		if _, ok := value.(bool); !ok {
			return one(path, "must be a boolean")
		}
		return nil
	case "google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.Int64Value",
		"google.protobuf.UInt64Value", "google.protobuf.FloatValue", "google.protobuf.DoubleValue":
		if _, ok := value.(json.Number); !ok {
			return one(path, "must be a number")
		}
		return nil
	case "google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.ListValue", "google.protobuf.Any":
		return nil
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return one(path, "must be an object")
	}
	return checkMessage(md, obj, path+".")
}

func one(path, msg string) map[string][]string { return map[string][]string{path: {msg}} }
