package mockllm

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Paths of the media and legacy routes.
const (
	imagesPath         = "/v1/images/generations"
	speechPath         = "/v1/audio/speech"
	transcriptionsPath = "/v1/audio/transcriptions"
	moderationsPath    = "/v1/moderations"
	completionsPath    = "/v1/completions"
)

// SpeechSampleRate is the sample rate of the mock's speech (16-bit mono
// PCM in a WAV file); each input character is SpeechMillisPerChar of it.
const (
	SpeechSampleRate    = 8000
	SpeechMillisPerChar = 10
)

var imageSizeRE = regexp.MustCompile(`^([0-9]{2,5}x[0-9]{2,5}|auto)$`)

// Image returns the mock's image for prompt, choice i: a deterministic
// 8x8 PNG whose colours come from a hash of both. POST
// /v1/images/generations answers exactly these bytes.
func Image(prompt string, i int) []byte {
	state := hashString(fnvOffset, prompt) ^ uint64(i+1)*0x9e3779b97f4a7c15
	img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			v := splitmix64(&state)
			img.SetNRGBA(x, y, color.NRGBA{uint8(v), uint8(v >> 8), uint8(v >> 16), 255})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img) // writing to memory does not fail
	return buf.Bytes()
}

// images answers POST /v1/images/generations: n images (Image), as
// b64_json, or for response_format url as data: URLs (the mock hosts
// nothing). It reports no usage, as dall-e does.
func (s *Server) images(w http.ResponseWriter, r *http.Request, b *behaviour) {
	var req struct {
		Model          string `json:"model"`
		Prompt         string `json:"prompt"`
		Size           string `json:"size"`
		ResponseFormat string `json:"response_format"`
		N              *int   `json:"n"`
	}
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, imagesPath, apiOpenAI, http.StatusBadRequest, err.Error())
		return
	}
	n := 1
	if req.N != nil {
		n = *req.N
	}
	switch {
	case req.Model == "" || req.Prompt == "":
		s.fail(w, imagesPath, apiOpenAI, http.StatusBadRequest, "model and prompt are required")
		return
	case n < 1 || n > 10:
		s.failParam(w, imagesPath, apiOpenAI, http.StatusBadRequest, "n must be between 1 and 10", "n")
		return
	case req.Size != "" && !imageSizeRE.MatchString(req.Size):
		s.failParam(w, imagesPath, apiOpenAI, http.StatusBadRequest, "size must be WIDTHxHEIGHT or auto", "size")
		return
	case req.ResponseFormat != "" && req.ResponseFormat != "url" && req.ResponseFormat != "b64_json":
		s.failParam(w, imagesPath, apiOpenAI, http.StatusBadRequest, "response_format must be url or b64_json", "response_format")
		return
	}
	buf := []byte(`{"created":`)
	buf = appendInt(buf, s.now().Unix())
	buf = append(buf, `,"data":[`...)
	for i := 0; i < n; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		enc := base64.StdEncoding.EncodeToString(Image(req.Prompt, i))
		if req.ResponseFormat == "url" {
			buf = append(buf, `{"url":"data:image/png;base64,`...)
		} else {
			buf = append(buf, `{"b64_json":"`...)
		}
		buf = append(buf, enc...)
		buf = append(buf, `","revised_prompt":`...)
		buf = appendString(buf, req.Prompt)
		buf = append(buf, '}')
	}
	buf = append(buf, "]}\n"...)
	s.record(imagesPath, http.StatusOK)
	writeJSON(w, http.StatusOK, buf)
}

// Speech returns the mock's speech for input: a WAV file of 16-bit mono
// PCM at SpeechSampleRate, SpeechMillisPerChar per character (Unicode
// code point), a tone whose pitch comes from a hash of input. POST
// /v1/audio/speech answers exactly these bytes, whatever response_format
// asks (the mock encodes nothing else).
func Speech(input string) []byte {
	n := utf8.RuneCountInString(input) * SpeechSampleRate * SpeechMillisPerChar / 1000
	pitch := 200 + float64(hashString(fnvOffset, input)%400)
	out := make([]byte, 44+2*n)
	copy(out, "RIFF")
	binary.LittleEndian.PutUint32(out[4:], uint32(36+2*n))
	copy(out[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(out[16:], 16)
	binary.LittleEndian.PutUint16(out[20:], 1) // PCM
	binary.LittleEndian.PutUint16(out[22:], 1) // mono
	binary.LittleEndian.PutUint32(out[24:], SpeechSampleRate)
	binary.LittleEndian.PutUint32(out[28:], SpeechSampleRate*2)
	binary.LittleEndian.PutUint16(out[32:], 2)
	binary.LittleEndian.PutUint16(out[34:], 16)
	copy(out[36:], "data")
	binary.LittleEndian.PutUint32(out[40:], uint32(2*n))
	for i := 0; i < n; i++ {
		v := int16(8000 * math.Sin(2*math.Pi*pitch*float64(i)/SpeechSampleRate))
		binary.LittleEndian.PutUint16(out[44+2*i:], uint16(v))
	}
	return out
}

// speech answers POST /v1/audio/speech with Speech(input) as audio/wav.
func (s *Server) speech(w http.ResponseWriter, r *http.Request, b *behaviour) {
	var req struct {
		Model string          `json:"model"`
		Input string          `json:"input"`
		Voice json.RawMessage `json:"voice"`
	}
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, speechPath, apiOpenAI, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case req.Model == "" || req.Input == "" || len(req.Voice) == 0:
		s.fail(w, speechPath, apiOpenAI, http.StatusBadRequest, "model, input and voice are required")
		return
	case utf8.RuneCountInString(req.Input) > 4096:
		s.failParam(w, speechPath, apiOpenAI, http.StatusBadRequest, "input is longer than 4096 characters", "input")
		return
	}
	audio := Speech(req.Input)
	h := w.Header()
	h["Content-Type"] = []string{"audio/wav"}
	h["Content-Length"] = []string{strconv.Itoa(len(audio))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(audio)
	s.record(speechPath, http.StatusOK)
}

// AudioSeconds is the length the mock reports for an audio file: a WAV
// file's data size over its byte rate, any other file its size over
// 16,000 bytes a second (128 kbit/s, as a common MP3).
func AudioSeconds(file []byte) float64 {
	if len(file) >= 44 && string(file[:4]) == "RIFF" && string(file[8:12]) == "WAVE" {
		var rate uint32
		for off := 12; off+8 <= len(file); {
			id, size := string(file[off:off+4]), int(binary.LittleEndian.Uint32(file[off+4:]))
			if id == "fmt " && off+20 <= len(file) {
				rate = binary.LittleEndian.Uint32(file[off+16:])
			}
			if id == "data" && rate > 0 {
				return float64(min(size, len(file)-off-8)) / float64(rate)
			}
			if size < 0 || off+8+size+size&1 > len(file) {
				break
			}
			off += 8 + size + size&1
		}
	}
	return float64(len(file)) / 16000
}

// transcriptions answers POST /v1/audio/transcriptions: a text of one
// word per KiB of the file (at least one, at most 200) drawn from a
// generator seeded by its bytes, and usage {"type":"duration","seconds"}
// of AudioSeconds (or X-Mock-Audio-Seconds) in json; verbose_json reports
// the duration instead, text, srt and vtt neither.
func (s *Server) transcriptions(w http.ResponseWriter, r *http.Request, b *behaviour) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		s.fail(w, transcriptionsPath, apiOpenAI, http.StatusBadRequest, "send multipart/form-data")
		return
	}
	var file []byte
	fields := map[string]string{}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, maxBodyBytes), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.fail(w, transcriptionsPath, apiOpenAI, http.StatusBadRequest, "reading the multipart body: "+err.Error())
			return
		}
		v, err := io.ReadAll(p)
		if err != nil {
			s.fail(w, transcriptionsPath, apiOpenAI, http.StatusBadRequest, "reading the multipart body: "+err.Error())
			return
		}
		if p.FormName() == "file" {
			file = v
		} else {
			fields[p.FormName()] = string(v)
		}
	}
	if len(file) == 0 || fields["model"] == "" {
		s.fail(w, transcriptionsPath, apiOpenAI, http.StatusBadRequest, "file and model are required")
		return
	}
	secs := AudioSeconds(file)
	if b.audioSeconds >= 0 {
		secs = b.audioSeconds
	}
	words := min(max(len(file)/1024, 1), 200)
	text := generate(hashBytes(fnvOffset, file), words, -1, nil, false).text
	var buf []byte
	ct := "application/json"
	switch f := fields["response_format"]; f {
	case "", "json":
		buf = append(appendString([]byte(`{"text":`), text), '}')
		if !b.omitUsage {
			buf = append(buf[:len(buf)-1], `,"usage":{"type":"duration","seconds":`...)
			buf = strconv.AppendFloat(buf, secs, 'f', -1, 64)
			buf = append(buf, "}}"...)
		}
	case "verbose_json":
		buf = append(buf, `{"task":"transcribe","language":"english","duration":`...)
		buf = strconv.AppendFloat(buf, secs, 'f', -1, 64)
		buf = append(appendString(append(buf, `,"text":`...), text), `,"segments":[]}`...)
	case "text":
		buf, ct = []byte(text+"\n"), "text/plain; charset=utf-8"
	case "srt", "vtt":
		ts := "00:00:00,000 --> 00:00:01,000"
		if f == "vtt" {
			buf, ts = []byte("WEBVTT\n\n"), strings.ReplaceAll(ts, ",", ".")
		} else {
			buf = []byte("1\n")
		}
		buf, ct = append(buf, ts+"\n"+text+"\n"...), "text/plain; charset=utf-8"
	default:
		s.failParam(w, transcriptionsPath, apiOpenAI, http.StatusBadRequest, "response_format must be json, text, srt, verbose_json or vtt", "response_format")
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{ct}
	h["Content-Length"] = []string{strconv.Itoa(len(buf))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
	s.record(transcriptionsPath, http.StatusOK)
}

// moderationCategories are the categories the mock's moderation reports.
var moderationCategories = []string{"harassment", "hate", "self-harm", "sexual", "violence"}

// FlagWord is what makes the mock's moderation flag an input (category
// violence); every other input passes.
const FlagWord = "mock-flag"

// moderations answers POST /v1/moderations, one result per input (a
// string or an array of strings).
func (s *Server) moderations(w http.ResponseWriter, r *http.Request, b *behaviour) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, moderationsPath, apiOpenAI, http.StatusBadRequest, err.Error())
		return
	}
	var inputs []string
	var one string
	if json.Unmarshal(req.Input, &one) == nil {
		inputs = []string{one}
	} else if json.Unmarshal(req.Input, &inputs) != nil || len(inputs) == 0 {
		s.failParam(w, moderationsPath, apiOpenAI, http.StatusBadRequest, "input must be a string or an array of strings", "input")
		return
	}
	model := req.Model
	if model == "" {
		model = "omni-moderation-latest"
	}
	buf := appendID([]byte(`{"id":"`), "modr-", hashBytes(fnvOffset, req.Input))
	buf = appendString(append(buf, `","model":`...), model)
	buf = append(buf, `,"results":[`...)
	for i, in := range inputs {
		if i > 0 {
			buf = append(buf, ',')
		}
		flagged := strings.Contains(in, FlagWord)
		buf = append(buf, `{"flagged":`...)
		buf = strconv.AppendBool(buf, flagged)
		for _, part := range []string{"categories", "category_scores"} {
			buf = append(buf, `,"`+part+`":{`...)
			for j, c := range moderationCategories {
				if j > 0 {
					buf = append(buf, ',')
				}
				v := flagged && c == "violence"
				buf = append(buf, `"`+c+`":`...)
				if part == "categories" {
					buf = strconv.AppendBool(buf, v)
				} else if v {
					buf = append(buf, "0.99"...)
				} else {
					buf = append(buf, "0.01"...)
				}
			}
			buf = append(buf, '}')
		}
		buf = append(buf, '}')
	}
	buf = append(buf, "]}\n"...)
	s.record(moderationsPath, http.StatusOK)
	writeJSON(w, http.StatusOK, buf)
}

// completions answers the legacy POST /v1/completions: for each prompt
// (a string or strings) and each of n choices, a completion drawn as a
// chat answer's is, cut by max_tokens (default 16); usage counts the
// prompts' words and the pieces.
func (s *Server) completions(w http.ResponseWriter, r *http.Request, b *behaviour) {
	var req struct {
		Model     string          `json:"model"`
		Prompt    json.RawMessage `json:"prompt"`
		MaxTokens *int            `json:"max_tokens"`
		N         *int            `json:"n"`
		Stream    bool            `json:"stream"`
	}
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, completionsPath, apiOpenAI, http.StatusBadRequest, err.Error())
		return
	}
	var prompts []string
	var one string
	if json.Unmarshal(req.Prompt, &one) == nil {
		prompts = []string{one}
	} else if json.Unmarshal(req.Prompt, &prompts) != nil || len(prompts) == 0 {
		s.failParam(w, completionsPath, apiOpenAI, http.StatusBadRequest, "prompt must be a string or an array of strings", "prompt")
		return
	}
	n, limit := 1, 16
	if req.N != nil {
		n = *req.N
	}
	if req.MaxTokens != nil {
		limit = *req.MaxTokens
	}
	switch {
	case req.Model == "":
		s.failParam(w, completionsPath, apiOpenAI, http.StatusBadRequest, "you must provide a model parameter", "model")
		return
	case req.Stream:
		s.failParam(w, completionsPath, apiOpenAI, http.StatusBadRequest, "the mock does not stream legacy completions", "stream")
		return
	case n < 1 || n > 16 || limit < 0:
		s.fail(w, completionsPath, apiOpenAI, http.StatusBadRequest, "n must be 1-16 and max_tokens not negative")
		return
	}
	p := newPrompt(req.Model)
	promptTokens := 0
	for _, t := range prompts {
		p.add("user", t)
		promptTokens += CountTokens(t)
	}
	buf := appendID([]byte(`{"id":"`), "cmpl-", p.hash)
	buf = append(buf, `","object":"text_completion","created":`...)
	buf = appendInt(buf, s.now().Unix())
	buf = appendString(append(buf, `,"model":`...), req.Model)
	buf = append(buf, `,"choices":[`...)
	out := 0
	for i := 0; i < n*len(prompts); i++ {
		o := generate(p.choiceSeed(i), b.outputTokens, limit, nil, false)
		out += len(o.pieces)
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"text":`...)
		buf = appendString(buf, o.text)
		buf = append(buf, `,"index":`...)
		buf = appendInt(buf, int64(i))
		buf = append(buf, `,"logprobs":null,"finish_reason":"`+o.reason+`"}`...)
	}
	buf = append(buf, ']')
	if !b.omitUsage {
		buf = append(buf, `,"usage":{"prompt_tokens":`...)
		buf = appendInt(buf, int64(promptTokens))
		buf = append(buf, `,"completion_tokens":`...)
		buf = appendInt(buf, int64(out))
		buf = append(buf, `,"total_tokens":`...)
		buf = appendInt(buf, int64(promptTokens+out))
		buf = append(buf, '}')
	}
	buf = append(buf, "}\n"...)
	s.record(completionsPath, http.StatusOK)
	writeJSON(w, http.StatusOK, buf)
}
