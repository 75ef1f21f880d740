package webhook

import (
	"context"
	"slices"
	"time"
	"unicode/utf8"

	"tollgate"
)

// NewEndpoint validates what the admin asked for and returns the endpoint
// to store, with a fresh id and secret: url per policy, at least one
// event type, every one in the catalogue (duplicates dropped, catalogue
// order), description at most MaxDescription bytes. platform is the
// platform the endpoint belongs to ("" for the operator's own). Errors
// carry EINVALID.
func NewEndpoint(platform, url string, events []string, description string, policy URLPolicy, now time.Time) (Endpoint, error) {
	if err := policy.CheckURL(url); err != nil {
		return Endpoint{}, err
	}
	if len(events) == 0 {
		return Endpoint{}, tollgate.Errorf(tollgate.EINVALID, "events must name at least one event type: %v", Types())
	}
	if len(events) > 2*len(Types()) {
		return Endpoint{}, tollgate.Errorf(tollgate.EINVALID, "events lists %d types; there are %d", len(events), len(Types()))
	}
	var types []string
	for _, t := range events {
		if !ValidType(t) {
			return Endpoint{}, tollgate.Errorf(tollgate.EINVALID, "unknown event type %q; known: %v", t, Types())
		}
	}
	for _, t := range Types() {
		if slices.Contains(events, t) {
			types = append(types, t)
		}
	}
	if len(description) > MaxDescription || !utf8.ValidString(description) {
		return Endpoint{}, tollgate.Errorf(tollgate.EINVALID, "description is UTF-8 text of at most %d bytes", MaxDescription)
	}
	return Endpoint{ID: NewID("we_"), PlatformID: platform, URL: url, Events: types, Description: description, Secret: NewSecret(),
		CreatedAt: now.UTC()}, nil
}

// Rotate gives an endpoint a new secret; the old one keeps signing for
// RotationOverlap. It returns the endpoint with its new secret.
func Rotate(ctx context.Context, s Store, id string, now time.Time) (Endpoint, error) {
	return s.RotateSecret(ctx, id, NewSecret(), now.Add(RotationOverlap))
}
