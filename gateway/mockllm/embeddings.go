package mockllm

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
)

const embeddingsPath = "/v1/embeddings"

// embeddingRequest is the part of an OpenAI embeddings request the mock reads.
type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int            `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// embeddingInput is one input: its hash seeds the vector, tokens is its
// usage (words of a string, length of a token array).
type embeddingInput struct {
	hash   uint64
	tokens int
}

// embeddingInputs reads "input": a string, an array of strings, an array
// of token ids, or an array of token-id arrays.
func embeddingInputs(raw json.RawMessage) ([]embeddingInput, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errorf("input is required")
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []embeddingInput{{hashString(fnvOffset, one), CountTokens(one)}}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || len(items) == 0 {
		return nil, errorf("input must be a string, an array of strings or an array of token arrays")
	}
	var ids []int64
	if json.Unmarshal(raw, &ids) == nil {
		return []embeddingInput{{hashBytes(fnvOffset, raw), len(ids)}}, nil
	}
	out := make([]embeddingInput, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err == nil {
			out[i] = embeddingInput{hashString(fnvOffset, s), CountTokens(s)}
			continue
		}
		if err := json.Unmarshal(it, &ids); err != nil {
			return nil, errorf("input[%d] must be a string or an array of token ids", i)
		}
		out[i] = embeddingInput{hashBytes(fnvOffset, bytes.TrimSpace(it)), len(ids)}
	}
	return out, nil
}

// Vector returns the mock's embedding of a text input: dims float32
// values of unit length, drawn from a sequence seeded by the text.
// POST /v1/embeddings answers exactly these values, so tests can compare.
func Vector(input string, dims int) []float32 {
	return vector(hashString(fnvOffset, input), dims)
}

func vector(seed uint64, dims int) []float32 {
	v := make([]float32, dims)
	state := seed
	var sum float64
	for i := range v {
		x := float64(splitmix64(&state)>>11)/(1<<53)*2 - 1
		v[i] = float32(x)
		sum += x * x
	}
	if norm := math.Sqrt(sum); norm > 0 {
		for i := range v {
			v[i] = float32(float64(v[i]) / norm)
		}
	}
	return v
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request, b *behaviour) {
	var req embeddingRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, embeddingsPath, apiOpenAI, http.StatusBadRequest, err.Error())
		return
	}
	if req.Model == "" {
		s.failParam(w, embeddingsPath, apiOpenAI, http.StatusBadRequest, "you must provide a model parameter", "model")
		return
	}
	inputs, err := embeddingInputs(req.Input)
	if err != nil {
		s.failParam(w, embeddingsPath, apiOpenAI, http.StatusBadRequest, err.Error(), "input")
		return
	}
	dims := DefaultEmbeddingDimensions
	if req.Dimensions != nil {
		dims = *req.Dimensions
		if dims < 1 || dims > 8192 {
			s.failParam(w, embeddingsPath, apiOpenAI, http.StatusBadRequest, "dimensions must be between 1 and 8192", "dimensions")
			return
		}
	}
	b64 := false
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		b64 = true
	default:
		s.failParam(w, embeddingsPath, apiOpenAI, http.StatusBadRequest, "encoding_format must be float or base64", "encoding_format")
		return
	}
	buf := make([]byte, 0, 64+len(inputs)*dims*12)
	buf = append(buf, `{"object":"list","data":[`...)
	buf, tokens := appendEmbeddings(buf, inputs, dims, b64)
	buf = append(buf, `],"model":`...)
	buf = appendString(buf, req.Model)
	if !b.omitUsage {
		buf = append(buf, `,"usage":{"prompt_tokens":`...)
		buf = appendInt(buf, int64(tokens))
		buf = append(buf, `,"total_tokens":`...)
		buf = appendInt(buf, int64(tokens))
		buf = append(buf, '}')
	}
	buf = append(buf, "}\n"...)
	s.record(embeddingsPath, http.StatusOK)
	writeJSON(w, http.StatusOK, buf)
}

// appendEmbeddings appends the embedding objects of inputs and returns
// their total tokens.
func appendEmbeddings(buf []byte, inputs []embeddingInput, dims int, b64 bool) ([]byte, int) {
	tokens := 0
	raw := make([]byte, 4*dims)
	for i, in := range inputs {
		tokens += in.tokens
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"object":"embedding","index":`...)
		buf = appendInt(buf, int64(i))
		buf = append(buf, `,"embedding":`...)
		v := vector(in.hash, dims)
		if b64 {
			for j, x := range v {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(x))
			}
			buf = append(buf, '"')
			buf = base64.StdEncoding.AppendEncode(buf, raw)
			buf = append(buf, '"')
		} else {
			buf = append(buf, '[')
			for j, x := range v {
				if j > 0 {
					buf = append(buf, ',')
				}
				buf = strconv.AppendFloat(buf, float64(x), 'g', -1, 32)
			}
			buf = append(buf, ']')
		}
		buf = append(buf, '}')
	}
	return buf, tokens
}

// models answers GET /v1/models in OpenAI's shape, or in Anthropic's when
// the request carries an anthropic-version header.
func (s *Server) models(w http.ResponseWriter, r *http.Request, _ *behaviour) {
	models := s.Models
	if len(models) == 0 {
		models = DefaultModels
	}
	anthropic := r.Header.Get("Anthropic-Version") != ""
	var buf []byte
	if anthropic {
		buf = append(buf, `{"data":[`...)
	} else {
		buf = append(buf, `{"object":"list","data":[`...)
	}
	for i, m := range models {
		if i > 0 {
			buf = append(buf, ',')
		}
		if anthropic {
			buf = append(buf, `{"type":"model","id":`...)
			buf = appendString(buf, m)
			buf = append(buf, `,"display_name":`...)
			buf = appendString(buf, m)
			buf = append(buf, `,"created_at":"2025-01-01T00:00:00Z"}`...)
		} else {
			buf = append(buf, `{"id":`...)
			buf = appendString(buf, m)
			buf = append(buf, `,"object":"model","created":1735689600,"owned_by":"mockllm"}`...)
		}
	}
	buf = append(buf, ']')
	if anthropic {
		buf = append(buf, `,"has_more":false,"first_id":`...)
		buf = appendString(buf, models[0])
		buf = append(buf, `,"last_id":`...)
		buf = appendString(buf, models[len(models)-1])
	}
	buf = append(buf, "}\n"...)
	s.record("/v1/models", http.StatusOK)
	writeJSON(w, http.StatusOK, buf)
}
