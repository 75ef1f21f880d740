package tollgate

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// NewRequestID returns a fresh request id: "req_", then the time in
// microseconds (16 hex digits) and 12 random bytes (24 hex digits). It is
// the id of every gateway answer, its X-Request-Id and its usage record
// (GET /v1/usage/{id}); the server makes it, never the client, so no two
// calls share one. Ids that grow with time land at the end of the usage
// table's key order: a batch of settles writes a few pages at its end, not
// one random page per row.
func NewRequestID(now time.Time) string {
	var b [20]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMicro()))
	_, _ = rand.Read(b[8:]) // crypto/rand.Read never fails (Go 1.24+)
	return "req_" + hex.EncodeToString(b[:])
}
