package main

import (
	"bytes"
	"context"
	"encoding/base64"
	le "encoding/binary"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
	"tollgate/pricing"
)

// mediaModels are the dev setup's models priced per image, per character
// and per audio minute rather than per token.
var mediaModels = map[string]bool{"mock-image": true, "mock-tts": true, "mock-whisper": true}

// mediaWAV is a WAV file of 16-bit mono PCM at 8 kHz lasting ms.
func mediaWAV(ms int) []byte {
	n := 8 * ms
	b := make([]byte, 44+2*n)
	copy(b, "RIFF")
	le.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	le.LittleEndian.PutUint32(b[16:], 16)
	le.LittleEndian.PutUint16(b[20:], 1)
	le.LittleEndian.PutUint16(b[22:], 1)
	le.LittleEndian.PutUint32(b[24:], 8000)
	le.LittleEndian.PutUint32(b[28:], 16000)
	le.LittleEndian.PutUint16(b[32:], 2)
	le.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	le.LittleEndian.PutUint32(b[40:], uint32(2*n))
	return b
}

// TestSDKMedia drives serve's zero-config dev setup with the official
// OpenAI SDK as a user would: models.Get, images.Generate,
// audio.Speech.New and audio.Transcriptions.New. Each bill is the
// built-in price of what the mock made (images, characters, the seconds
// it reports), said in the X-Tollgate-Cost-Credits header (and
// usage.cost_credits in JSON answers), and the balance moves by exactly
// that.
func TestSDKMedia(t *testing.T) {
	s := mustSDKServe(t)
	ctx := context.Background()
	key := s.account(t)
	s.mustPrices(t, key)
	no, bought, _ := s.mustOrder(t, key)
	s.mustPay(t, key, no, bought)
	client := s.openai(key)
	prices, err := pricing.New(pricing.DefaultConfig(), pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// bill checks one call's bill: the header's cost is the price of units,
	// the balance moved by exactly it, no hold left.
	bill := func(t *testing.T, before sdkSnap, resp *http.Response, model string, units tollgate.Tokens) int64 {
		t.Helper()
		want, err := prices.Cost(ctx, model, units)
		if err != nil {
			t.Fatal(err)
		}
		cost, err := strconv.ParseInt(resp.Header.Get(gateway.CostHeader), 10, 64)
		if err != nil || cost != int64(want) || cost <= 0 {
			t.Errorf("%s %q, want %d for %+v", gateway.CostHeader, resp.Header.Get(gateway.CostHeader), want, units)
		}
		wantBal := before.sdkBalance
		wantBal.Credits -= cost
		if got := s.balance(t, key); got != wantBal {
			t.Errorf("balance %+v after a call costing %d, want %+v", got, cost, wantBal)
		}
		return cost
	}

	t.Run("ModelsGet", func(t *testing.T) {
		before := s.snap(t, key)
		m, err := client.Models.Get(ctx, "mock-whisper")
		if err != nil || m.ID != "mock-whisper" || m.Object != "model" {
			t.Fatalf("%+v, %v", m, err)
		}
		if _, err := client.Models.Get(ctx, "no-such-model"); err == nil {
			t.Error("an unknown model was found")
		}
		if after := s.snap(t, key); after != before {
			t.Errorf("getting a model moved the balance from %+v to %+v", before, after)
		}
	})

	t.Run("ImagesGenerate", func(t *testing.T) {
		before := s.snap(t, key)
		var resp *http.Response
		img, err := client.Images.Generate(ctx, openai.ImageGenerateParams{Model: "mock-image", Prompt: "a red fox",
			N: openai.Int(2), Size: openai.ImageGenerateParamsSize1024x1024, Quality: openai.ImageGenerateParamsQualityHigh,
			ResponseFormat: openai.ImageGenerateParamsResponseFormatB64JSON}, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		if len(img.Data) != 2 {
			t.Fatalf("%d images, want 2", len(img.Data))
		}
		if b, _ := base64.StdEncoding.DecodeString(img.Data[0].B64JSON); !bytes.Equal(b, mockllm.Image("a red fox", 0)) {
			t.Error("image 0 is not the mock's")
		}
		cost := bill(t, before, resp, "mock-image", tollgate.Tokens{Images: 2, ImageSize: "1024x1024/high"})
		if got := costCredits(t, img.Usage.JSON.ExtraFields); got != cost {
			t.Errorf("usage.cost_credits %d, header %d", got, cost)
		}
	})

	t.Run("SpeechNew", func(t *testing.T) {
		before := s.snap(t, key)
		input := "Hello from tollgate, déjà vu."
		resp, err := client.Audio.Speech.New(ctx, openai.AudioSpeechNewParams{Model: "mock-tts", Input: input,
			Voice:          openai.AudioSpeechNewParamsVoiceUnion{OfString: openai.String("alloy")},
			ResponseFormat: openai.AudioSpeechNewParamsResponseFormatWAV})
		if err != nil {
			t.Fatal(err)
		}
		audio, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(audio, mockllm.Speech(input)) {
			t.Fatalf("audio of %d bytes is not the mock's: %v", len(audio), err)
		}
		bill(t, before, resp, "mock-tts", tollgate.Tokens{Characters: int64(len([]rune(input)))})
	})

	t.Run("TranscriptionsNew", func(t *testing.T) {
		before := s.snap(t, key)
		file := mediaWAV(61_500) // 61.5 s: the mock reports 61.5, billed 62
		var resp *http.Response
		tr, err := client.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{Model: "mock-whisper",
			File: openai.File(bytes.NewReader(file), "speech.wav", "audio/wav")}, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		if tr.Text == "" || tr.Usage.Type != "duration" || tr.Usage.Seconds != 61.5 {
			t.Fatalf("transcription %q, usage %+v", tr.Text, tr.Usage)
		}
		bill(t, before, resp, "mock-whisper", tollgate.Tokens{AudioSeconds: 62})
	})

	t.Run("TranscriptionNotAudio", func(t *testing.T) {
		before := s.snap(t, key)
		_, err := client.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{Model: "mock-whisper",
			File: openai.File(bytes.NewReader([]byte("plain text, not audio")), "notes.txt", "text/plain")})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
			t.Fatalf("err %v, want a 400", err)
		}
		if after := s.snap(t, key); after != before {
			t.Errorf("a refused file moved the balance from %+v to %+v", before, after)
		}
	})
	s.mustAudit(t)
}
