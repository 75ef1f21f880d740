package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// anthStream translates Messages API stream events into chat.completion.chunk
// objects: message_start gives the assistant role, text and input_json
// deltas give content and tool-call argument deltas, message_delta gives
// the finish reason and the final usage, message_stop ends the stream.
type anthStream struct {
	ctx     context.Context
	body    io.ReadCloser
	sse     *sseReader
	id      string // the upstream's id of its message
	model   string
	ids     *answerIDs // the chunks' id and model; nil: the upstream's
	created int64
	tools   map[int]int // content block index -> tool_calls index
	start   anthUsage
	final   *tokenUsage
	done    bool
}

// anthEvent is the union of the stream events' fields the gateway reads.
type anthEvent struct {
	Type    string `json:"type"`
	Index   int    `json:"index"`
	Message struct {
		ID    string    `json:"id"`
		Model string    `json:"model"`
		Usage anthUsage `json:"usage"`
	} `json:"message"`
	ContentBlock anthBlock `json:"content_block"`
	Delta        struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage *anthUsage      `json:"usage"`
	Error json.RawMessage `json:"error"`
}

func (s *anthStream) next() (*chunk, error) {
	for {
		if s.done {
			return nil, io.EOF
		}
		_, data, err := s.sse.next()
		if err == io.EOF {
			return nil, classify(s.ctx, io.ErrUnexpectedEOF) // no message_stop: the stream broke
		}
		if err != nil {
			return nil, classify(s.ctx, err)
		}
		var ev anthEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream sent an invalid stream event", Err: err}
		}
		if chunk, err := s.translate(&ev); chunk != nil || err != nil {
			return chunk, err
		}
	}
}

// translate turns one event into a chunk, or nil for events with nothing
// to say to an OpenAI client.
func (s *anthStream) translate(ev *anthEvent) (*chunk, error) {
	switch ev.Type {
	case "message_start":
		s.id, s.model, s.start = ev.Message.ID, ev.Message.Model, ev.Message.Usage
		return s.chunk(map[string]any{"role": "assistant", "content": ""}, nil), nil
	case "content_block_start":
		if ev.ContentBlock.Type != "tool_use" {
			return nil, nil
		}
		i := len(s.tools)
		s.tools[ev.Index] = i
		var tc oaToolCall
		tc.Index, tc.ID, tc.Type, tc.Function.Name = &i, ev.ContentBlock.ID, "function", ev.ContentBlock.Name
		return s.chunk(map[string]any{"tool_calls": []oaToolCall{tc}}, nil), nil
	case "content_block_delta":
		switch ev.Delta.Type {
		case "text_delta":
			return s.chunk(map[string]any{"content": ev.Delta.Text}, nil), nil
		case "input_json_delta":
			i, ok := s.tools[ev.Index]
			if !ok || ev.Delta.PartialJSON == "" {
				return nil, nil
			}
			var tc oaToolCall
			tc.Index, tc.Function.Arguments = &i, ev.Delta.PartialJSON
			return s.chunk(map[string]any{"tool_calls": []oaToolCall{tc}}, nil), nil
		}
		return nil, nil
	case "message_delta":
		if ev.Usage != nil {
			s.final = s.start.merge(*ev.Usage).normalise()
		}
		reason := finishReason(ev.Delta.StopReason)
		return s.chunk(map[string]any{}, &reason), nil
	case "message_stop":
		s.done = true
		return nil, io.EOF
	case "error":
		return nil, &upstreamError{Status: http.StatusBadGateway, Message: upstreamMessage([]byte(`{"error":` + string(ev.Error) + `}`))}
	}
	return nil, nil // ping, content_block_stop, thinking and future events
}

// chunk makes the chat.completion.chunk carrying delta and finish in
// choice 0. Its bytes are what json.Marshal gives for the map of its
// members (keys sorted), written with one Marshal for the delta instead of
// one per member.
func (s *anthStream) chunk(delta map[string]any, finish *string) *chunk {
	d, _ := json.Marshal(delta)
	f := []byte("null")
	if finish != nil {
		f, _ = json.Marshal(*finish)
	}
	var id, model []byte
	if s.ids != nil {
		id, model = s.ids.id, s.ids.model
	} else {
		id, _ = json.Marshal(s.id)
		model, _ = json.Marshal(s.model)
	}
	b := make([]byte, 0, 160+len(d)+len(id)+len(model))
	b = append(b, `{"choices":`...)
	from := len(b)
	b = append(append(append(b, `[{"delta":`...), d...), `,"finish_reason":`...)
	b = append(append(b, f...), `,"index":0,"logprobs":null}]`...)
	to := len(b)
	b = strconv.AppendInt(append(b, `,"created":`...), s.created, 10)
	b = append(append(b, `,"id":`...), id...)
	b = append(append(b, `,"model":`...), model...)
	b = append(b, `,"object":"chat.completion.chunk"}`...)
	return &chunk{raw: b, cs: choicesOf(b[from:to:to])}
}

// usage is known once message_delta has arrived; before it only the input
// is known, and the relay counts delivered output itself.
func (s *anthStream) usage() *tokenUsage { return s.final }

func (s *anthStream) onWait(f func()) { s.sse.wait = f }

func (s *anthStream) upstreamID() string { return s.id }

// inputUsage is the prompt usage message_start reported, or nil.
func (s *anthStream) inputUsage() *tokenUsage {
	if s.id == "" {
		return nil
	}
	return s.start.normalise()
}

func (s *anthStream) Close() error { return s.body.Close() }
