package mockllm

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// errGone reports that the client went away in the middle of a stream.
var errGone = errors.New("mockllm: client went away")

// sse writes one server-sent-event stream, paced and cut as the request's
// behaviour says.
type sse struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	ctx      context.Context
	failLeft int  // events before the cut; -1: never
	flushAll bool // flush after every event (else only at pauses and the end)
	interval time.Duration
	timer    *time.Timer
	buf      []byte
}

// startSSE answers 200 with an event-stream and counts the request.
func (s *Server) startSSE(w http.ResponseWriter, r *http.Request, path string, b *behaviour) *sse {
	s.record(path, http.StatusOK)
	h := w.Header()
	h["Content-Type"] = []string{"text/event-stream; charset=utf-8"}
	h["Cache-Control"] = []string{"no-cache"}
	h["Connection"] = []string{"keep-alive"}
	w.WriteHeader(http.StatusOK)
	st := &sse{w: w, rc: http.NewResponseController(w), ctx: r.Context(), failLeft: b.failAfter}
	if b.tps > 0 {
		st.interval = time.Duration(float64(time.Second) / b.tps)
	}
	// Unpaced, uncut streams let the connection's buffer coalesce events
	// (as TCP would for a fast upstream) and go out when the handler returns: it halves
	// the mock's cost per stream under load. Clients parse the same bytes.
	st.flushAll = st.interval > 0 || st.failLeft >= 0
	if st.failLeft == 0 {
		st.cut()
	}
	return st
}

// event writes one event (an "event:" line when name is set, then the data
// line) and flushes it. After FailAfter events it aborts the connection.
func (st *sse) event(name string, data []byte) error {
	if err := st.ctx.Err(); err != nil {
		return errGone
	}
	st.buf = st.buf[:0]
	if name != "" {
		st.buf = append(st.buf, "event: "...)
		st.buf = append(st.buf, name...)
		st.buf = append(st.buf, '\n')
	}
	st.buf = append(st.buf, "data: "...)
	st.buf = append(st.buf, data...)
	st.buf = append(st.buf, "\n\n"...)
	if _, err := st.w.Write(st.buf); err != nil {
		return errGone
	}
	if st.flushAll {
		if err := st.rc.Flush(); err != nil {
			return errGone
		}
	}
	if st.failLeft > 0 {
		st.failLeft--
		if st.failLeft == 0 {
			st.cut()
		}
	}
	return nil
}

// cut aborts the response: net/http closes the connection (HTTP/1) or
// resets the stream (HTTP/2) without a terminating chunk, as when an
// upstream dies mid-stream.
func (st *sse) cut() {
	_ = st.rc.Flush()
	panic(http.ErrAbortHandler)
}

// pace waits between two token events when TokensPerSecond is set.
func (st *sse) pace() error {
	if st.interval <= 0 {
		return nil
	}
	if st.timer == nil {
		st.timer = time.NewTimer(st.interval)
	} else {
		st.timer.Reset(st.interval)
	}
	select {
	case <-st.timer.C:
		return nil
	case <-st.ctx.Done():
		st.timer.Stop()
		return errGone
	}
}

// generationTime is how long a non-streaming answer of tokens takes.
func generationTime(b *behaviour, tokens int) time.Duration {
	if b.tps <= 0 {
		return 0
	}
	return time.Duration(float64(tokens) / b.tps * float64(time.Second))
}
