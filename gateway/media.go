package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"tollgate"
)

// CostHeader is the response header giving the credits an answer of the
// media endpoints cost (images, speech, transcriptions), beside
// usage.cost_credits in their JSON bodies: a speech answer is audio.
const CostHeader = "X-Tollgate-Cost-Credits"

// Bounds of the media endpoints, as OpenAI's API sets them.
const (
	maxImages       = 10     // n of one image request
	maxImagePrompt  = 32_000 // characters of an image prompt
	maxSpeechInput  = 4096   // characters of a speech input
	defaultImgSize  = "1024x1024"
	maxFormField    = 64 << 10 // a multipart field other than the file
	audioBodyMargin = 1 << 20  // the multipart body beyond its file
)

// DefaultMaxAudioBytes is Options.MaxAudioBytes when unset: OpenAI's
// limit on a file to transcribe.
const DefaultMaxAudioBytes = 25 << 20

// requestObject decodes a JSON request body into its members, and the
// named fields into their destinations (a field absent or null is left
// as it is).
func requestObject(body []byte, fields map[string]any) (map[string]json.RawMessage, error) {
	raw, err := objectFields(body)
	if err != nil {
		var dup duplicateKeyError
		if errors.As(err, &dup) {
			return nil, invalid("request body has the key %q twice", dup.key)
		}
		return nil, invalid("request body must be a JSON object")
	}
	for name, dst := range fields {
		if v, ok := raw[name]; ok && string(v) != "null" {
			if err := json.Unmarshal(v, dst); err != nil {
				return nil, invalid("field %q has the wrong type", name)
			}
		}
	}
	return raw, nil
}

// forwarders keeps the deployments that can serve what (a path of
// OpenAI's API): the OpenAI-compatible ones.
func forwarders(model, what string, deps []*deployment) ([]*deployment, error) {
	var out []*deployment
	for _, d := range deps {
		if _, ok := d.up.(forwarder); ok {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, tollgate.Errorf(tollgate.EINVALID, "the model %q does not serve %s: none of its upstreams is OpenAI-compatible", model, what)
	}
	return out, nil
}

// oneOf checks an optional enumerated field.
func oneOf(field, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return invalid("%s %q is not one of %s", field, v, strings.Join(allowed, ", "))
}

// setCost sets CostHeader.
func setCost(w http.ResponseWriter, credits tollgate.Credits) {
	w.Header().Set(CostHeader, strconv.FormatInt(int64(credits), 10))
}

// withCostCredits returns obj with cost_credits added to its usage object
// (made when absent and create is set; left as it is when usage is not an
// object).
func withCostCredits(obj map[string]json.RawMessage, credits tollgate.Credits, create bool) ([]byte, error) {
	u, ok := obj["usage"]
	var usage map[string]json.RawMessage
	switch {
	case ok && string(u) != "null":
		var err error
		if usage, err = objectFields(u); err != nil {
			return withFields(obj, nil)
		}
	case !create:
		return withFields(obj, nil)
	}
	b, err := withFields(usage, map[string]any{"cost_credits": int64(credits)})
	if err != nil {
		return nil, err
	}
	return withFields(obj, map[string]any{"usage": json.RawMessage(b)})
}

// imageKey is the per-image price key of size and quality for model:
// size/quality when priced, else size. A size the model has no price
// for is EINVALID naming the sizes it has.
func (g *Gateway) imageKey(model, size, quality string) (string, error) {
	if quality != "" {
		if _, err := g.opts.Pricer.Cost(model, tollgate.Tokens{Images: 1, ImageSize: size + "/" + quality}); err == nil {
			return size + "/" + quality, nil
		}
	}
	_, err := g.opts.Pricer.Cost(model, tollgate.Tokens{Images: 1, ImageSize: size})
	if tollgate.ErrorCode(err) == tollgate.EINVALID {
		return "", err
	}
	return size, nil // another error (no price at all) is the hold's to report
}

// ImageGenerations serves POST /v1/images/generations on OpenAI-compatible
// deployments: n images (1 to 10) of size (default 1024x1024, always sent
// upstream so that what is made is what is priced) and quality, held at n
// times the model's per-image price for that size and quality and settled
// on the images returned. A size the model has no price for is a 400
// before anything is held.
func (g *Gateway) ImageGenerations(w http.ResponseWriter, r *http.Request) {
	c, body, err := g.begin(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req struct {
		Model, Prompt, Size, Quality, ResponseFormat string
		N                                            int64
		Stream                                       bool
	}
	req.N = 1
	raw, err := requestObject(body, map[string]any{"model": &req.Model, "prompt": &req.Prompt, "size": &req.Size,
		"quality": &req.Quality, "response_format": &req.ResponseFormat, "n": &req.N, "stream": &req.Stream})
	switch {
	case err != nil:
	case req.Model == "" || req.Prompt == "":
		err = invalid("model and prompt are required")
	case utf8.RuneCountInString(req.Prompt) > maxImagePrompt:
		err = invalid("prompt is longer than %d characters", maxImagePrompt)
	case req.N < 1 || req.N > maxImages:
		err = invalid("n must be between 1 and %d", maxImages)
	case req.Stream:
		err = invalid("streamed image generation is not supported here; leave stream out")
	default:
		err = oneOf("response_format", req.ResponseFormat, "url", "b64_json")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if req.Size == "" {
		req.Size = defaultImgSize
	}
	deps, err := g.lookup(c, req.Model)
	if err == nil {
		deps, err = forwarders(req.Model, "image generation", deps)
	}
	var key string
	if err == nil {
		key, err = g.imageKey(req.Model, req.Size, req.Quality)
	}
	if err == nil {
		err = g.admit(r, c, req.Model)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	m, err := g.reserveUnits(r, c, req.Model, 0, 0, 0, tollgate.Tokens{Images: req.N, ImageSize: key})
	if err != nil {
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	var obj map[string]json.RawMessage
	var made int64
	d, err := g.failover(m.ctx, m.hold.RequestID, req.Model, deps, func(a *attempt, d *deployment) error {
		defer a.done()
		out, err := withFields(raw, map[string]any{"model": d.cfg.Model, "size": req.Size})
		if err != nil {
			return err
		}
		resp, err := d.up.(forwarder).forward(a.ctx, d, "/images/generations", "application/json", out)
		if err != nil {
			return err
		}
		b, err := readBody(a.ctx, resp)
		if err != nil {
			return err
		}
		var data []json.RawMessage
		if obj, err = objectFields(b); err == nil {
			err = json.Unmarshal(obj["data"], &data)
		}
		if err != nil {
			return &upstreamError{Status: http.StatusBadGateway, Message: "upstream answered without a list of images", Err: err}
		}
		made = min(int64(len(data)), req.N)
		return nil
	})
	if err != nil {
		m.release(r.Context())
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	m.answered(w, d)
	credits := m.settle(r.Context(), d, tokenUsage{Units: tollgate.Tokens{Images: made, ImageSize: key}}, false, "ok")
	b, err := withCostCredits(obj, credits, true)
	if err != nil {
		writeError(w, err)
		return
	}
	setCost(w, credits)
	writeJSON(w, http.StatusOK, json.RawMessage(b))
}

// Speech serves POST /v1/audio/speech on OpenAI-compatible deployments:
// input (at most 4,096 characters) read aloud in voice, held and settled
// on its characters (Unicode code points) at the model's per-1M-character
// price. The audio is relayed as the upstream sends it; once the upstream
// has answered, the characters are billed, the upstream having billed
// them, whether or not the client reads all of the audio.
func (g *Gateway) Speech(w http.ResponseWriter, r *http.Request) {
	c, body, err := g.begin(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req struct {
		Model, Input, ResponseFormat, StreamFormat string
		Voice                                      json.RawMessage
	}
	raw, err := requestObject(body, map[string]any{"model": &req.Model, "input": &req.Input, "voice": &req.Voice,
		"response_format": &req.ResponseFormat, "stream_format": &req.StreamFormat})
	chars := int64(utf8.RuneCountInString(req.Input))
	switch {
	case err != nil:
	case req.Model == "" || req.Input == "":
		err = invalid("model and input are required")
	case len(req.Voice) == 0 || string(req.Voice) == `""` || string(req.Voice) == "{}":
		err = invalid("voice is required")
	case chars > maxSpeechInput:
		err = invalid("input is %d characters, above the limit of %d", chars, maxSpeechInput)
	case req.StreamFormat != "" && req.StreamFormat != "audio":
		err = invalid("stream_format %q is not supported here; the audio is streamed as it comes", req.StreamFormat)
	default:
		err = oneOf("response_format", req.ResponseFormat, "mp3", "opus", "aac", "flac", "wav", "pcm")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	deps, err := g.lookup(c, req.Model)
	if err == nil {
		deps, err = forwarders(req.Model, "speech", deps)
	}
	if err == nil {
		err = g.admit(r, c, req.Model)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	units := tollgate.Tokens{Characters: chars}
	m, err := g.reserveUnits(r, c, req.Model, 0, 0, 0, units)
	if err != nil {
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	var resp *http.Response
	var att *attempt
	d, err := g.failover(m.ctx, m.hold.RequestID, req.Model, deps, func(a *attempt, d *deployment) error {
		out, err := withFields(raw, map[string]any{"model": d.cfg.Model})
		if err != nil {
			return err
		}
		resp, err = d.up.(forwarder).forward(a.ctx, d, "/audio/speech", "application/json", out)
		att = a
		return err
	})
	if err != nil {
		m.release(r.Context())
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	defer att.done()
	defer resp.Body.Close()
	m.answered(w, d)
	// The header tells the cost before the audio; the settle waits until
	// the audio is relayed, since settling ends the request's upstream
	// context, which the audio is still read with. The provider bills the
	// characters once it answered, so an audio cut short costs the same.
	u := tokenUsage{Units: units}
	setCost(w, m.cost(u))
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(http.StatusOK)
	relayErr := g.relayBytes(w, resp.Body, att)
	status := "ok"
	if relayErr != nil {
		status = "interrupted"
	}
	m.settle(r.Context(), d, u, false, status)
	if err := relayErr; err != nil {
		g.opts.Logger.InfoContext(r.Context(), "speech relay ended early", "request_id", m.hold.RequestID, "err", err)
	}
}

// relayBytes copies an upstream's body to the client as it comes, each
// read renewing the attempt's watchdog and each write bounded by
// Options.StreamWriteTimeout.
func (g *Gateway) relayBytes(w http.ResponseWriter, body io.Reader, a *attempt) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			a.touch()
			if t := g.opts.StreamWriteTimeout; t > 0 {
				_ = rc.SetWriteDeadline(time.Now().Add(t))
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			_ = rc.Flush()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// formField is one multipart field other than the file, kept in order.
type formField struct{ name, value string }

// audioForm is a transcription request read from its multipart body.
type audioForm struct {
	fields      []formField
	file        []byte
	filename    string
	contentType string
	model       string
}

// readAudioForm reads a multipart/form-data body: the file (at most limit
// bytes) and the other fields.
func readAudioForm(r *http.Request, body []byte, limit int64) (*audioForm, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, invalid("send the audio as multipart/form-data with the fields file and model")
	}
	f := &audioForm{}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	seenFile := false
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, invalid("the multipart body could not be read: %v", err)
		}
		name := p.FormName()
		if name == "file" {
			if seenFile {
				return nil, invalid("file is sent twice")
			}
			seenFile = true
			b, err := io.ReadAll(io.LimitReader(p, limit+1))
			if err != nil {
				return nil, invalid("the multipart body could not be read: %v", err)
			}
			if int64(len(b)) > limit {
				return nil, &StatusError{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large",
					Err: tollgate.Errorf(tollgate.EINVALID, "file is larger than %d bytes", limit)}
			}
			f.file, f.filename, f.contentType = b, p.FileName(), p.Header.Get("Content-Type")
			continue
		}
		if name == "" {
			return nil, invalid("a multipart part has no field name")
		}
		b, err := io.ReadAll(io.LimitReader(p, maxFormField+1))
		if err != nil {
			return nil, invalid("the multipart body could not be read: %v", err)
		}
		if len(b) > maxFormField {
			return nil, invalid("field %q is longer than %d bytes", name, maxFormField)
		}
		if name == "model" {
			f.model = string(b)
			continue
		}
		f.fields = append(f.fields, formField{name, string(b)})
	}
	if !seenFile || len(f.file) == 0 {
		return nil, invalid("file is required: the audio to transcribe")
	}
	if f.model == "" {
		return nil, invalid("model is required")
	}
	return f, nil
}

// field is the value of the form's field name, "" when absent.
func (f *audioForm) field(name string) string {
	for _, x := range f.fields {
		if x.name == name {
			return x.value
		}
	}
	return ""
}

// encode writes the form for the upstream model, as a multipart body and
// its content type.
func (f *audioForm) encode(model string) ([]byte, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("model", model); err != nil {
		return nil, "", err
	}
	for _, x := range f.fields {
		if err := mw.WriteField(x.name, x.value); err != nil {
			return nil, "", err
		}
	}
	h := textproto.MIMEHeader{}
	quote := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "")
	name := f.filename
	if name == "" {
		name = "audio"
	}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+quote.Replace(name)+`"`)
	ct := f.contentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	pw, err := mw.CreatePart(h)
	if err == nil {
		_, err = pw.Write(f.file)
	}
	if err == nil {
		err = mw.Close()
	}
	return buf.Bytes(), mw.FormDataContentType(), err
}

// heldSeconds is what a transcription of d holds: its whole seconds
// rounded up, plus 2% and one second, since providers decode and round a
// file's length their own way.
func heldSeconds(d time.Duration) int64 {
	s := int64(math.Ceil(d.Seconds()))
	return s + (s+49)/50 + 1
}

// reportedSeconds reads the seconds a transcription answer reports:
// usage {"type":"duration","seconds":N}, else verbose_json's duration;
// ok is false when it reports neither (text formats, token usage).
func reportedSeconds(obj map[string]json.RawMessage) (int64, bool) {
	var u struct {
		Type    string   `json:"type"`
		Seconds *float64 `json:"seconds"`
	}
	if json.Unmarshal(obj["usage"], &u) == nil && u.Type == "duration" && u.Seconds != nil && *u.Seconds >= 0 && *u.Seconds < 1e9 {
		return int64(math.Ceil(*u.Seconds)), true
	}
	var d float64
	if json.Unmarshal(obj["duration"], &d) == nil && d >= 0 && d < 1e9 && obj["duration"] != nil {
		return int64(math.Ceil(d)), true
	}
	return 0, false
}

// Transcriptions serves POST /v1/audio/transcriptions on OpenAI-compatible
// deployments: a multipart file (at most Options.MaxAudioBytes) and model.
// The file's duration is measured before anything is held (WAV, MP3 and
// FLAC; other formats, and files that are not audio or whose duration
// cannot be read, are a 400); the hold is heldSeconds at the model's
// per-minute price, and the settle is the seconds the upstream reports
// (usage.seconds, or verbose_json's duration), never more than held; when
// it reports none (text, srt, vtt answers), the measured seconds.
func (g *Gateway) Transcriptions(w http.ResponseWriter, r *http.Request) {
	c, body, err := g.beginLimit(w, r, g.opts.MaxAudioBytes+audioBodyMargin)
	if err != nil {
		writeError(w, err)
		return
	}
	f, err := readAudioForm(r, body, g.opts.MaxAudioBytes)
	if err == nil {
		err = oneOf("response_format", f.field("response_format"), "json", "text", "srt", "verbose_json", "vtt")
	}
	if err == nil && f.field("stream") == "true" {
		err = invalid("streamed transcription is not supported here; leave stream out")
	}
	var dur time.Duration
	if err == nil {
		_, dur, err = audioDuration(f.file)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	deps, err := g.lookup(c, f.model)
	if err == nil {
		deps, err = forwarders(f.model, "transcription", deps)
	}
	if err == nil {
		err = g.admit(r, c, f.model)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	measured, held := int64(math.Ceil(dur.Seconds())), heldSeconds(dur)
	m, err := g.reserveUnits(r, c, f.model, 0, 0, 0, tollgate.Tokens{AudioSeconds: held})
	if err != nil {
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	var answer []byte
	var contentType string
	d, err := g.failover(m.ctx, m.hold.RequestID, f.model, deps, func(a *attempt, d *deployment) error {
		defer a.done()
		out, ct, err := f.encode(d.cfg.Model)
		if err != nil {
			return fmt.Errorf("encode the transcription request: %w", err)
		}
		resp, err := d.up.(forwarder).forward(a.ctx, d, "/audio/transcriptions", ct, out)
		if err != nil {
			return err
		}
		contentType = resp.Header.Get("Content-Type")
		answer, err = readBody(a.ctx, resp)
		return err
	})
	if err != nil {
		m.release(r.Context())
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	m.answered(w, d)
	obj, jsonErr := objectFields(answer)
	secs, reported := int64(0), false
	if jsonErr == nil {
		secs, reported = reportedSeconds(obj)
	}
	if !reported {
		secs = measured
	}
	secs = min(secs, held)
	credits := m.settle(r.Context(), d, tokenUsage{Units: tollgate.Tokens{AudioSeconds: secs}}, !reported, "ok")
	setCost(w, credits)
	if jsonErr != nil {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(answer)
		return
	}
	b, err := withCostCredits(obj, credits, false)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, json.RawMessage(b))
}
