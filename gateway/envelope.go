package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
)

// envelope is the grpc-gateway marshaler that speaks Northflank's wire
// format: responses are {"data": <message>} with a list's pagination lifted
// next to "data", and request bodies are decoded strictly (decodeJSON).
type envelope struct{}

var _ runtime.Marshaler = envelope{}

// marshalOptions emits empty lists and zero values so clients see every
// documented field, while fields with presence (a last page's cursor) stay
// absent when unset.
var marshalOptions = protojson.MarshalOptions{EmitDefaultValues: true}

var paginationName = (&apiv1.Pagination{}).ProtoReflect().Descriptor().FullName()

// Marshal implements runtime.Marshaler. v is a response message, or the
// field a method's response_body selects: a message, or a repeated message
// field's slice (GetJobLogs' "lines"), which becomes a JSON array.
func (envelope) Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"data":`)
	msg, ok := v.(proto.Message)
	if !ok {
		if err := appendMessageList(&buf, v); err != nil {
			return nil, err
		}
		buf.WriteByte('}')
		return buf.Bytes(), nil
	}
	var pagination []byte
	m := msg.ProtoReflect()
	if fd := m.Descriptor().Fields().ByName("pagination"); fd != nil && fd.Kind() == protoreflect.MessageKind &&
		fd.Message().FullName() == paginationName && m.Has(fd) {
		// Lift pagination out of "data". The response is ours alone once
		// the handler returned it, so clearing the field is safe.
		var err error
		if pagination, err = marshalOptions.Marshal(m.Get(fd).Message().Interface()); err != nil {
			return nil, err
		}
		m.Clear(fd)
	}
	if err := appendMessage(&buf, msg); err != nil {
		return nil, err
	}
	if pagination != nil {
		buf.WriteString(`,"pagination":`)
		appendCompact(&buf, pagination)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// appendMessageList appends v, a slice of proto messages, to buf as a
// compact JSON array: [] when it is empty or nil, never null.
func appendMessageList(buf *bytes.Buffer, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return fmt.Errorf("gateway: response is %T, not a proto message or a list of them", v)
	}
	buf.WriteByte('[')
	for i := range rv.Len() {
		msg, ok := rv.Index(i).Interface().(proto.Message)
		if !ok {
			return fmt.Errorf("gateway: response is %T, not a proto message or a list of them", v)
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := appendMessage(buf, msg); err != nil {
			return err
		}
	}
	buf.WriteByte(']')
	return nil
}

// appendList appends a repeated message field's value to buf as a compact
// JSON array.
func appendList(buf *bytes.Buffer, list protoreflect.List) error {
	buf.WriteByte('[')
	for i := range list.Len() {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := appendMessage(buf, list.Get(i).Message().Interface()); err != nil {
			return err
		}
	}
	buf.WriteByte(']')
	return nil
}

// appendMessage appends msg's JSON in the API's options. protojson varies
// its whitespace on purpose; compacting gives clients stable, smaller
// bodies.
func appendMessage(buf *bytes.Buffer, msg proto.Message) error {
	data, err := marshalOptions.Marshal(msg)
	if err != nil {
		return err
	}
	appendCompact(buf, data)
	return nil
}

// appendCompact appends data, JSON that protojson wrote, without the
// whitespace outside strings. protojson's output is valid by
// construction, so unlike json.Compact this does not validate it again: it
// only tracks whether it is inside a string (profiled on GET
// /v1/projects/{id}, json.Compact's validating scanner cost as much as a
// fifth of the marshalling).
func appendCompact(buf *bytes.Buffer, data []byte) {
	buf.Grow(len(data))
	inString, escaped := false, false
	start := 0
	for i, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
			buf.Write(data[start:i])
			start = i + 1
		}
	}
	buf.Write(data[start:])
}

// Unmarshal implements runtime.Marshaler.
func (envelope) Unmarshal(data []byte, v any) error {
	msg, ok := v.(proto.Message)
	if !ok {
		// A body mapped to one field (body: "spec") arrives as a pointer to
		// that field: allocate the message and decode into it.
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Pointer {
			return errors.New("gateway: request is not a proto message")
		}
		field := rv.Elem()
		if field.IsNil() {
			field.Set(reflect.New(field.Type().Elem()))
		}
		if msg, ok = field.Interface().(proto.Message); !ok {
			return errors.New("gateway: request is not a proto message")
		}
	}
	return decodeJSON(data, msg)
}

// NewDecoder implements runtime.Marshaler. Decode errors are also parked on
// the request body so the error handler can report their field details,
// which grpc-gateway's own wrapping would otherwise flatten to a string.
func (e envelope) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		err = e.Unmarshal(data, v)
		if b, ok := r.(*requestBody); ok && err != nil && !errors.Is(err, io.EOF) {
			b.decodeErr = err
		}
		return err
	})
}

// NewEncoder implements runtime.Marshaler.
func (e envelope) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		data, err := e.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
}

// ContentType implements runtime.Marshaler.
func (envelope) ContentType(any) string { return "application/json" }

// requestBody is the buffered request body the middleware hands on: the
// size limit has already been enforced by the time a handler reads it.
type requestBody struct {
	*bytes.Reader
	decodeErr error
}

// Close implements io.Closer.
func (*requestBody) Close() error { return nil }
