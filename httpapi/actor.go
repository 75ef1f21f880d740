package httpapi

import (
	"context"
	"net/http"

	"tollgate"
)

// ActorHeader names who is acting through the admin API, for its logs and
// the records it writes (adjustments, refunds): an optional request header
// of 1 to MaxActorLen printable ASCII characters without spaces, e.g.
// "console:1a2b3c4d" from the console. It means something only beside the
// admin token, which every /admin route requires; a request without it
// acts as DefaultActor. A malformed one is refused (400) before the
// handler runs, so nothing is changed.
const ActorHeader = "X-Tollgate-Actor"

// DefaultActor is the actor of an admin request without ActorHeader.
const DefaultActor = "admin"

// MaxActorLen bounds ActorHeader's value (and the refund record's actor
// column, migration 0012).
const MaxActorLen = 64

type actorKey struct{}

// ValidActor reports whether a is an acceptable ActorHeader value: 1 to
// MaxActorLen bytes, each printable ASCII other than a space.
func ValidActor(a string) bool {
	if len(a) == 0 || len(a) > MaxActorLen {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] <= ' ' || a[i] > '~' {
			return false
		}
	}
	return true
}

// readActor returns r's actor: ActorHeader's value, DefaultActor without
// it. Errors: EINVALID (more than one, or a malformed value).
func readActor(r *http.Request) (string, error) {
	vs := r.Header.Values(ActorHeader)
	switch {
	case len(vs) == 0:
		return DefaultActor, nil
	case len(vs) > 1:
		return "", tollgate.Errorf(tollgate.EINVALID, "send at most one %s header", ActorHeader)
	case !ValidActor(vs[0]):
		return "", tollgate.Errorf(tollgate.EINVALID,
			"%s must be 1 to %d printable ASCII characters without spaces (e.g. console:1a2b3c4d), or left out to act as %q",
			ActorHeader, MaxActorLen, DefaultActor)
	}
	return vs[0], nil
}

// actorOf returns the actor withAdmin stored for r, DefaultActor when
// there is none.
func actorOf(r *http.Request) string {
	if a, ok := r.Context().Value(actorKey{}).(string); ok {
		return a
	}
	return DefaultActor
}

func withActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}
