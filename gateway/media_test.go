package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
	"tollgate/pricing"
)

// realPricer is the gateway's Pricer over the built-in price table, as
// serve's adapter is.
type realPricer struct{ p *pricing.Pricer }

func (r realPricer) Cost(model string, t tollgate.Tokens) (tollgate.Credits, error) {
	return r.p.Cost(context.Background(), model, t)
}

// mediaEnv is a gateway over the dev setup's models (mock-image, mock-tts,
// mock-whisper beside the chat ones) on mock, priced by the built-in
// price table, with balance credits.
func mediaEnv(t *testing.T, balance int64, mock *mockllm.Server, mod func(*gateway.Options)) (*env, realPricer) {
	t.Helper()
	up := httptest.NewServer(mock)
	t.Cleanup(up.Close)
	cfg := gateway.DefaultMockProviders(up.URL)
	pcfg := pricing.DefaultConfig().PriceLike("mock", slices.Collect(maps.Keys(cfg.Models)))
	p, err := pricing.New(pcfg, pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, meter: newFakeMeter(t, balance), caller: tollgate.Caller{Account: "acct-1", KeyID: "key-1"}}
	opts := gateway.Options{Meter: e.meter, Pricer: realPricer{p}, Seed: 1, Counter: mockCounter{},
		Retry: gateway.RetryPolicy{BackoffBase: 1, BackoffMax: 1}}
	if mod != nil {
		mod(&opts)
	}
	if e.gw, err = gateway.New(cfg, opts); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.gw.Handler().ServeHTTP(w, r.WithContext(tollgate.WithCaller(r.Context(), e.caller)))
	}))
	t.Cleanup(e.srv.Close)
	return e, realPricer{p}
}

// cost is what t costs for model at the built-in prices.
func (r realPricer) must(t *testing.T, model string, u tollgate.Tokens) int64 {
	t.Helper()
	c, err := r.Cost(model, u)
	if err != nil {
		t.Fatal(err)
	}
	return int64(c)
}

// mustCharge checks the one settled call charged want credits, said so in
// its CostHeader, moved the balance from before by exactly that, recorded
// units, and left no hold.
func (e *env) mustCharge(resp *http.Response, before, want int64, units tollgate.Tokens) {
	e.t.Helper()
	balance, holds, usages, _ := e.meter.state()
	if got := resp.Header.Get(gateway.CostHeader); got != strconv.FormatInt(want, 10) {
		e.t.Errorf("%s: %q, want %d", gateway.CostHeader, got, want)
	}
	if before-balance != want || holds != 0 {
		e.t.Errorf("balance moved by %d with %d holds open, want %d", before-balance, holds, want)
	}
	if len(usages) == 0 || usages[len(usages)-1].Units != units || int64(usages[len(usages)-1].Credits) != want {
		e.t.Errorf("usages %+v, want the last of %d credits for %+v", usages, want, units)
	}
}

// mustRefuse checks a request was refused with status and a message
// containing msg before anything was held, and the upstream never called.
func (e *env) mustRefuse(resp *http.Response, body string, status int, msg string, mock *mockllm.Server, path string) {
	e.t.Helper()
	if resp.StatusCode != status || !strings.Contains(body, msg) || !strings.Contains(body, `"error"`) {
		e.t.Errorf("status %d %s, want %d with %q", resp.StatusCode, body, status, msg)
	}
	if n := e.meter.reserves.Load(); n != 0 {
		e.t.Errorf("%d holds made for a refused request", n)
	}
	if n := mock.Count(path, 200); n != 0 {
		e.t.Errorf("the upstream was called %d times", n)
	}
}

func TestImageGenerations(t *testing.T) {
	const balance = 1_000_000_000
	t.Run("BilledPerImage", func(t *testing.T) {
		for _, tc := range []struct{ quality, key string }{{"", "1024x1024"}, {"hd", "1024x1024/hd"}, {"standard", "1024x1024"}} {
			mock := &mockllm.Server{}
			e, p := mediaEnv(t, balance, mock, nil)
			body := `{"model":"mock-image","prompt":"a red fox","n":2,"response_format":"b64_json"`
			if tc.quality != "" {
				body += `,"quality":"` + tc.quality + `"`
			}
			resp, out := e.do(context.Background(), "/v1/images/generations", body+"}")
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
			m := mustJSON(t, out)
			img, _ := base64.StdEncoding.DecodeString(path(m, "data", 1, "b64_json").(string))
			if !bytes.Equal(img, mockllm.Image("a red fox", 1)) {
				t.Errorf("image 1 is not the mock's")
			}
			units := tollgate.Tokens{Images: 2, ImageSize: tc.key}
			want := p.must(t, "mock-image", units)
			if got := path(m, "usage", "cost_credits"); got != float64(want) {
				t.Errorf("usage.cost_credits %v, want %d", got, want)
			}
			if e.meter.lastHold.Load() != want {
				t.Errorf("held %d, want %d for 2 images", e.meter.lastHold.Load(), want)
			}
			e.mustCharge(resp, balance, want, units)
			if size := mock.Count("/v1/images/generations", 200); size != 1 {
				t.Errorf("%d upstream calls", size)
			}
		}
	})
	t.Run("BadInput", func(t *testing.T) {
		for _, tc := range []struct{ name, body, msg string }{
			{"SizeNotPriced", `{"model":"mock-image","prompt":"x","size":"512x512"}`, `images of size \"512x512\" (priced: 1024x1024`},
			{"TooMany", `{"model":"mock-image","prompt":"x","n":11}`, "n must be between 1 and 10"},
			{"NoPrompt", `{"model":"mock-image"}`, "model and prompt are required"},
			{"BadFormat", `{"model":"mock-image","prompt":"x","response_format":"gif"}`, "response_format"},
			{"ChatModel", `{"model":"mock-claude","prompt":"x"}`, "does not serve image generation"},
			{"ModelWithoutImagePrices", `{"model":"mock-gpt","prompt":"x"}`, "has no price for images"},
			{"NotJSON", `{"model":`, "JSON object"},
			{"Stream", `{"model":"mock-image","prompt":"x","stream":true}`, "stream"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				mock := &mockllm.Server{}
				e, _ := mediaEnv(t, balance, mock, nil)
				resp, out := e.do(context.Background(), "/v1/images/generations", tc.body)
				e.mustRefuse(resp, out, 400, tc.msg, mock, "/v1/images/generations")
			})
		}
	})
	t.Run("UpstreamFails", func(t *testing.T) {
		mock := &mockllm.Server{Status: 500}
		e, _ := mediaEnv(t, balance, mock, nil)
		resp, out := e.do(context.Background(), "/v1/images/generations", `{"model":"mock-image","prompt":"x"}`)
		if bal, holds, _, released := e.meter.state(); resp.StatusCode != 502 || bal != balance || holds != 0 || released != 1 {
			t.Errorf("status %d %s; balance %d, holds %d, released %d: want 502, nothing charged, the hold released", resp.StatusCode, out, bal, holds, released)
		}
	})
}

func TestSpeech(t *testing.T) {
	const balance = 1_000_000_000
	t.Run("BilledPerCharacter", func(t *testing.T) {
		mock := &mockllm.Server{}
		e, p := mediaEnv(t, balance, mock, nil)
		input := "Grüße, wörld! 你好" // 16 code points, more bytes
		resp, out := e.do(context.Background(), "/v1/audio/speech", `{"model":"mock-tts","input":"`+input+`","voice":"alloy","response_format":"wav"}`)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "audio/wav" {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if out != string(mockllm.Speech(input)) {
			t.Errorf("the audio is not the mock's (%d bytes)", len(out))
		}
		units := tollgate.Tokens{Characters: 16}
		e.mustCharge(resp, balance, p.must(t, "mock-tts", units), units)
	})
	t.Run("BadInput", func(t *testing.T) {
		for _, tc := range []struct{ name, body, msg string }{
			{"TooLong", `{"model":"mock-tts","voice":"alloy","input":"` + strings.Repeat("é", 4097) + `"}`, "input is 4097 characters, above the limit of 4096"},
			{"NoVoice", `{"model":"mock-tts","input":"hi"}`, "voice is required"},
			{"NoInput", `{"model":"mock-tts","voice":"alloy"}`, "model and input are required"},
			{"BadFormat", `{"model":"mock-tts","voice":"alloy","input":"hi","response_format":"ogg"}`, "response_format"},
			{"ModelWithoutCharacterPrices", `{"model":"mock-image","voice":"alloy","input":"hi"}`, "has no price for speech characters"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				mock := &mockllm.Server{}
				e, _ := mediaEnv(t, balance, mock, nil)
				resp, out := e.do(context.Background(), "/v1/audio/speech", tc.body)
				e.mustRefuse(resp, out, 400, tc.msg, mock, "/v1/audio/speech")
			})
		}
	})
	t.Run("UpstreamFails", func(t *testing.T) {
		mock := &mockllm.Server{Status: 503}
		e, _ := mediaEnv(t, balance, mock, nil)
		resp, _ := e.do(context.Background(), "/v1/audio/speech", `{"model":"mock-tts","voice":"alloy","input":"hi"}`)
		if bal, holds, _, released := e.meter.state(); resp.StatusCode != 503 || bal != balance || holds != 0 || released != 1 {
			t.Errorf("status %d; balance %d, holds %d, released %d", resp.StatusCode, bal, holds, released)
		}
	})
}

// wavFile is a WAV file of 16-bit mono PCM at 8 kHz lasting ms.
func wavFile(ms int) []byte {
	n := 8 * ms
	b := make([]byte, 44+2*n)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], 8000)
	binary.LittleEndian.PutUint32(b[28:], 16000)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	return b
}

// transcribe posts a multipart transcription with file (none when nil).
func (e *env) transcribe(file []byte, fields ...string) (*http.Response, string) {
	e.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = mw.WriteField(fields[i], fields[i+1])
	}
	if file != nil {
		fw, _ := mw.CreateFormFile("file", "speech.wav")
		_, _ = fw.Write(file)
	}
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/audio/transcriptions", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestTranscriptions(t *testing.T) {
	const balance = 1_000_000_000
	// A 2.5 s file: measured 3 s, held 3 + 1 (2%, rounded up) + 1 = 5 s.
	audio := wavFile(2500)
	for _, tc := range []struct {
		name     string
		mock     *mockllm.Server
		format   string
		billed   int64
		estimate bool
	}{
		{"UsageSeconds", &mockllm.Server{}, "json", 3, false},
		{"VerboseDuration", &mockllm.Server{}, "verbose_json", 3, false},
		{"ReportedLessThanMeasured", &mockllm.Server{TranscriptionSeconds: 1.2}, "json", 2, false},
		{"ReportedAboveHoldCapped", &mockllm.Server{TranscriptionSeconds: 600}, "json", 5, false},
		{"TextBilledAsMeasured", &mockllm.Server{}, "text", 3, true},
		{"NoUsageBilledAsMeasured", &mockllm.Server{OmitUsage: true}, "json", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, p := mediaEnv(t, balance, tc.mock, nil)
			resp, out := e.transcribe(audio, "model", "mock-whisper", "response_format", tc.format, "language", "en")
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
			if held, want := e.meter.lastHold.Load(), p.must(t, "mock-whisper", tollgate.Tokens{AudioSeconds: 5}); held != want {
				t.Errorf("held %d, want %d (5 s)", held, want)
			}
			units := tollgate.Tokens{AudioSeconds: tc.billed}
			want := p.must(t, "mock-whisper", units)
			e.mustCharge(resp, balance, want, units)
			if _, _, us, _ := e.meter.state(); us[0].Estimated != tc.estimate {
				t.Errorf("estimated %v, want %v", us[0].Estimated, tc.estimate)
			}
			if tc.format == "json" && !tc.estimate {
				if got := path(mustJSON(t, out), "usage", "cost_credits"); got != float64(want) {
					t.Errorf("usage.cost_credits %v, want %d: %s", got, want, out)
				}
			}
			if tc.format == "text" && (strings.HasPrefix(out, "{") || out == "") {
				t.Errorf("text answer %q", out)
			}
		})
	}
	t.Run("BadInput", func(t *testing.T) {
		ogg := append([]byte("OggS"), make([]byte, 100)...)
		noData := wavFile(100)[:36]
		for _, tc := range []struct {
			name   string
			file   []byte
			fields []string
			status int
			msg    string
		}{
			{"NoFile", nil, []string{"model", "mock-whisper"}, 400, "file is required"},
			{"NoModel", audio, nil, 400, "model is required"},
			{"NotAudio", []byte("just some text, not audio at all"), []string{"model", "mock-whisper"}, 400, "not audio in a format this gateway accepts (wav, mp3, flac)"},
			{"OggRefused", ogg, []string{"model", "mock-whisper"}, 400, "ogg (opus, vorbis) audio, whose duration this gateway cannot measure before the call; send wav, mp3, flac"},
			{"UnreadableDuration", noData, []string{"model", "mock-whisper"}, 400, "duration of this wav file cannot be read"},
			{"BadFormat", audio, []string{"model", "mock-whisper", "response_format", "mp4"}, 400, "response_format"},
			{"TooLarge", wavFile(1000), []string{"model", "mock-whisper"}, 413, "file is larger than 4096 bytes"},
			{"ModelWithoutMinutePrices", audio, []string{"model", "mock-tts"}, 400, "has no price for audio minutes"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				mock := &mockllm.Server{}
				e, _ := mediaEnv(t, balance, mock, func(o *gateway.Options) { o.MaxAudioBytes = 64 << 10 })
				if tc.name == "TooLarge" {
					e, _ = mediaEnv(t, balance, mock, func(o *gateway.Options) { o.MaxAudioBytes = 4096 })
				}
				resp, out := e.transcribe(tc.file, tc.fields...)
				e.mustRefuse(resp, out, tc.status, tc.msg, mock, "/v1/audio/transcriptions")
			})
		}
	})
	t.Run("NotMultipart", func(t *testing.T) {
		mock := &mockllm.Server{}
		e, _ := mediaEnv(t, balance, mock, nil)
		resp, out := e.do(context.Background(), "/v1/audio/transcriptions", `{"model":"mock-whisper"}`)
		e.mustRefuse(resp, out, 400, "multipart/form-data", mock, "/v1/audio/transcriptions")
	})
	t.Run("UpstreamFails", func(t *testing.T) {
		mock := &mockllm.Server{Status: 500}
		e, _ := mediaEnv(t, balance, mock, nil)
		resp, _ := e.transcribe(audio, "model", "mock-whisper")
		if bal, holds, _, released := e.meter.state(); resp.StatusCode != 502 || bal != balance || holds != 0 || released != 1 {
			t.Errorf("status %d; balance %d, holds %d, released %d", resp.StatusCode, bal, holds, released)
		}
	})
}

func TestModelByID(t *testing.T) {
	e, _ := mediaEnv(t, 1000, &mockllm.Server{}, nil)
	resp, out := e.do(context.Background(), "/v1/models/mock-gpt", "")
	if m := mustJSON(t, out); resp.StatusCode != 200 || m["id"] != "mock-gpt" || m["object"] != "model" || path(m, "pricing", "credits_per_1m_input_tokens") == nil {
		t.Errorf("%d %s", resp.StatusCode, out)
	}
	_, list := e.do(context.Background(), "/v1/models", "")
	for _, d := range mustJSON(t, list)["data"].([]any) {
		if d.(map[string]any)["id"] == "mock-gpt" && !equalJSON(t, d, mustJSON(t, out)) {
			t.Errorf("the list's entry %v differs from %s", d, out)
		}
	}
	resp, out = e.do(context.Background(), "/v1/models/no-such-model", "")
	if resp.StatusCode != 404 || path(mustJSON(t, out), "error", "code") != "model_not_found" {
		t.Errorf("unknown model: %d %s", resp.StatusCode, out)
	}
	e.caller.Limits.Models = []string{"mock-claude"}
	if resp, out = e.do(context.Background(), "/v1/models/mock-gpt", ""); resp.StatusCode != 404 {
		t.Errorf("a model the key may not use: %d %s", resp.StatusCode, out)
	}
}

// equalJSON compares two decoded JSON values.
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(x, y)
}

func TestModerationsFree(t *testing.T) {
	mock := &mockllm.Server{}
	e, _ := mediaEnv(t, 1000, mock, nil)
	resp, out := e.do(context.Background(), "/v1/moderations", `{"model":"mock-gpt","input":["fine","`+mockllm.FlagWord+`"]}`)
	m := mustJSON(t, out)
	if resp.StatusCode != 200 || path(m, "results", 0, "flagged") != false || path(m, "results", 1, "flagged") != true {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	if bal, _, usages, _ := e.meter.state(); bal != 1000 || len(usages) != 0 || e.meter.reserves.Load() != 0 || resp.Header.Get(gateway.CostHeader) != "0" {
		t.Errorf("a moderation moved the balance to %d, recorded %d usages, made %d holds", bal, len(usages), e.meter.reserves.Load())
	}
	mock.ResetStats()
	resp, out = e.do(context.Background(), "/v1/moderations", `{"input":"x"}`)
	e.mustRefuse(resp, out, 400, "model and input are required", mock, "/v1/moderations")
	resp, out = e.do(context.Background(), "/v1/moderations", `{"model":"mock-claude","input":"x"}`)
	e.mustRefuse(resp, out, 400, "does not serve moderations", mock, "/v1/moderations")
}

func TestLegacyCompletions(t *testing.T) {
	mock := &mockllm.Server{OutputTokens: 8}
	e, p := mediaEnv(t, 1_000_000_000, mock, nil)
	resp, out := e.do(context.Background(), "/v1/completions", `{"model":"mock-gpt","prompt":"say four words now","max_tokens":5,"n":2}`)
	m := mustJSON(t, out)
	if resp.StatusCode != 200 || path(m, "usage", "prompt_tokens") != float64(4) || path(m, "usage", "completion_tokens") != float64(10) {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	if !strings.HasPrefix(m["id"].(string), "chatcmpl-") && m["model"] != "mock-gpt" {
		t.Errorf("answer id %v model %v", m["id"], m["model"])
	}
	want := p.must(t, "mock-gpt", tollgate.Tokens{Input: 4, Output: 10})
	bal, holds, _, _ := e.meter.state()
	if got := path(m, "usage", "cost_credits"); got != float64(want) || 1_000_000_000-bal != want || holds != 0 {
		t.Errorf("cost_credits %v, balance moved %d, want %d", got, 1_000_000_000-bal, want)
	}
	for _, tc := range []struct{ body, msg string }{
		{`{"model":"mock-claude","prompt":"x"}`, "does not serve legacy completions"},
		{`{"model":"mock-gpt","prompt":"x","stream":true}`, "streamed legacy completions are not supported"},
		{`{"model":"mock-gpt"}`, "model and prompt are required"},
	} {
		e2, _ := mediaEnv(t, 1000, mock, nil)
		mock.ResetStats()
		resp, out := e2.do(context.Background(), "/v1/completions", tc.body)
		e2.mustRefuse(resp, out, 400, tc.msg, mock, "/v1/completions")
	}
}
