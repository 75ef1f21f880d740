package gateway

import (
	"bufio"
	"bytes"
	"io"
)

// sseReader reads Server-Sent Events: an optional "event:" name and the
// joined "data:" lines of each event. Comments and other fields are skipped.
type sseReader struct {
	r *bufio.Reader
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReaderSize(r, 64<<10)} }

// next returns the next event. At a clean end of input it returns io.EOF;
// input ending inside an event returns io.ErrUnexpectedEOF.
func (s *sseReader) next() (event string, data []byte, err error) {
	var buf bytes.Buffer
	seen := false
	for {
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			if err == io.EOF && len(line) == 0 {
				if seen {
					return event, buf.Bytes(), nil
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
				return event, buf.Bytes(), nil
			}
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event, seen = string(value), true
		case "data":
			if buf.Len() > 0 {
				buf.WriteByte('\n')
			}
			buf.Write(value)
			seen = true
		}
	}
}
