package gateway

import "encoding/json"

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with maps of plain values
	}
	return append(data, '\n')
}
