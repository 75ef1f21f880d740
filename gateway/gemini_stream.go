package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
)

// gemStream translates streamGenerateContent?alt=sse chunks (each a
// GenerateContentResponse with the candidates' new parts) into
// chat.completion.chunk objects. Gemini sends no end marker: the stream
// is complete when it ends after a chunk with a finishReason; it ending
// before one means it broke. Every chunk may carry usageMetadata (the
// prompt's count from the first, the candidates' at the end): the last
// one is the answer's usage.
type gemStream struct {
	ctx      context.Context
	body     io.ReadCloser
	sse      *sseReader
	id       string // the upstream's responseId
	model    string
	ids      *answerIDs
	created  int64
	started  map[int]bool // choices whose role was sent
	calls    map[int]int  // function calls sent per choice
	ended    map[int]bool // choices whose finishReason arrived
	finished bool         // every choice begun has ended
	last     *gemUsage    // the latest usageMetadata
	final    *tokenUsage  // set once the stream ended complete
	done     bool
}

func (s *gemStream) next() (*chunk, error) {
	for {
		if s.done {
			return nil, io.EOF
		}
		_, data, err := s.sse.next()
		if err != nil && s.finished {
			// Ended after the finish reason: complete (a connection
			// closed without a clean end after the last chunk loses nothing).
			s.done = true
			if s.last != nil {
				s.final = s.last.normalise()
			}
			return nil, io.EOF
		}
		if err == io.EOF {
			return nil, classify(s.ctx, io.ErrUnexpectedEOF) // no finish reason: the stream broke
		}
		if err != nil {
			return nil, classify(s.ctx, err)
		}
		var g gemResponse
		if err := json.Unmarshal(data, &g); err != nil {
			return nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream sent an invalid stream event", Err: err}
		}
		if len(g.Error) > 0 && string(g.Error) != "null" {
			return nil, &upstreamError{Status: http.StatusBadGateway, Message: upstreamMessage(data)}
		}
		if s.id == "" {
			s.id, s.model = g.ResponseID, g.ModelVersion
		}
		if u := parseGeminiUsage(g.UsageMetadata); u != nil {
			s.last = u
		}
		if c := s.translate(&g); c != nil {
			return c, nil
		}
	}
}

// translate makes the chunk of one Gemini chunk, or nil when it carries
// nothing for a chat client (usage only).
func (s *gemStream) translate(g *gemResponse) *chunk {
	var choices []map[string]any
	for _, c := range g.Candidates {
		delta := map[string]any{}
		if !s.started[c.Index] {
			s.started[c.Index] = true
			delta["role"] = "assistant"
		}
		text, calls := candidateMessage(s.id, c)
		if text != "" || delta["role"] != nil {
			delta["content"] = text
		}
		if len(calls) > 0 {
			if s.calls == nil {
				s.calls = map[int]int{}
			}
			for i := range calls {
				n := s.calls[c.Index]
				calls[i].Index = &n
				if calls[i].ID == gemCallID(s.id, c.Index, i) {
					calls[i].ID = gemCallID(s.id, c.Index, n)
				}
				s.calls[c.Index]++
			}
			delta["tool_calls"] = calls
		}
		var finish any
		if c.FinishReason != "" {
			if s.ended == nil {
				s.ended = map[int]bool{}
			}
			s.ended[c.Index] = true
			s.finished = len(s.ended) == len(s.started)
			finish = gemFinish(c.FinishReason, s.calls[c.Index] > 0)
		}
		if len(delta) == 0 && finish == nil {
			continue
		}
		choices = append(choices, map[string]any{"index": c.Index, "delta": delta, "finish_reason": finish, "logprobs": nil})
	}
	if len(g.Candidates) == 0 && len(g.PromptFeedback) > 0 && string(g.PromptFeedback) != "null" {
		// The prompt was blocked: one empty choice, filtered.
		s.finished = true
		choices = append(choices, map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": ""}, "finish_reason": "content_filter", "logprobs": nil})
	}
	if len(choices) == 0 {
		return nil
	}
	cs, _ := json.Marshal(choices)
	fields := map[string]json.RawMessage{"choices": cs, "object": json.RawMessage(`"chat.completion.chunk"`)}
	fields["created"], _ = json.Marshal(s.created)
	if s.ids != nil {
		fields["id"], fields["model"] = s.ids.id, s.ids.model
	} else {
		fields["id"], _ = json.Marshal(s.id)
		fields["model"], _ = json.Marshal(s.model)
	}
	return &chunk{fields: fields, cs: choicesOf(cs)}
}

// usage is known once the stream ended complete.
func (s *gemStream) usage() *tokenUsage { return s.final }

// inputUsage is the prompt usage the chunks reported so far, or nil: an
// interrupted stream bills it, with the output it delivered.
func (s *gemStream) inputUsage() *tokenUsage {
	if s.last == nil || s.last.Prompt == 0 {
		return nil
	}
	u := s.last.normalise()
	return &tokenUsage{Input: u.Input, Cached: u.Cached}
}

func (s *gemStream) onWait(f func()) { s.sse.wait = f }

func (s *gemStream) upstreamID() string { return s.id }

func (s *gemStream) Close() error { return s.body.Close() }
