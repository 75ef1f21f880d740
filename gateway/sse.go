package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxSSEEvent bounds one upstream event (its lines and joined data). Real
// chunks are a few KiB; a larger event ends the stream like any broken
// upstream instead of being held in memory and relayed.
const maxSSEEvent = 1 << 20

// errSSETooLarge is returned by sseReader.next for an event over maxSSEEvent.
var errSSETooLarge = errors.New("gateway: upstream stream event larger than 1 MiB")

// sseReader reads Server-Sent Events: an optional "event:" name and the
// joined "data:" lines of each event. Comments and other fields are skipped.
type sseReader struct {
	r *bufio.Reader
	// wait, when set, runs before a read that has to wait for the
	// network (no whole line is buffered): the relay flushes what it
	// wrote to the client there, so events that arrived together leave
	// in one write and none is held while the upstream is silent.
	wait func()
	// slack is the spare capacity each event's data gets (sseSlack for
	// an OpenAI stream, whose chunks cutUsage rewrites in place).
	slack int
}

// newSSEReader reads events from r. Its buffer is small (a stream is
// opened per request, and a 64 KiB buffer was a 64 KiB allocation each):
// longer lines are gathered by readLine, up to maxSSEEvent.
func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReaderSize(r, 4<<10)} }

// next returns the next event. At a clean end of input it returns io.EOF;
// input ending inside an event returns io.ErrUnexpectedEOF.
// sseSlack is the spare capacity of an OpenAI stream's event data: what
// the request id and the asked model name may add to a chunk without a
// new buffer.
const sseSlack = 64

func (s *sseReader) next() (event string, data []byte, err error) {
	seen := false
	for {
		line, err := s.readLine(maxSSEEvent - len(data))
		if err != nil {
			if err == io.EOF && len(line) == 0 {
				if seen {
					return event, data, nil
				}
				return "", nil, io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if seen {
				return event, data, nil
			}
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event, seen = string(value), true
		case "data":
			if len(data) > 0 {
				data = append(data, '\n')
			} else if data == nil {
				// Most events are one line: one allocation, with room
				// (slack) for the gateway's id and model where they are
				// rewritten in place; a request id is longer than most
				// upstreams'.
				data = make([]byte, 0, len(value)+s.slack)
			}
			data = append(data, value...)
			seen = true
		}
	}
}

// readLine reads one line of at most limit bytes, without ever buffering
// more than that. The line is valid until the next read.
func (s *sseReader) readLine(limit int) ([]byte, error) {
	var line []byte
	for {
		if s.wait != nil {
			b, _ := s.r.Peek(s.r.Buffered())
			if bytes.IndexByte(b, '\n') < 0 {
				s.wait()
			}
		}
		frag, err := s.r.ReadSlice('\n')
		if len(line)+len(frag) > limit {
			return nil, errSSETooLarge
		}
		if line == nil && err != bufio.ErrBufferFull {
			return frag, err // whole in the buffer: no copy (next copies what it keeps)
		}
		line = append(line, frag...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}
