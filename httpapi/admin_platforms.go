package httpapi

import (
	"net/http"
	"time"
	"tollgate/webhook"

	"tollgate"
	"tollgate/auth"
)

// PlatformView is a platform as the admin API shows it: never its key
// (shown once, by create).
type PlatformView struct {
	ID             string     `json:"id"`
	Object         string     `json:"object"`
	Name           string     `json:"name"`
	KeyPrefix      string     `json:"key_prefix"`
	ReturnURLHosts []string   `json:"return_url_hosts"`
	CreatedAt      time.Time  `json:"created_at"`
	RevokedAt      *time.Time `json:"revoked_at"`
}

// PlatformCreated is the answer of POST /admin/platforms: the platform
// and its key, shown this once.
type PlatformCreated struct {
	PlatformView
	Key string `json:"key"`
}

func platformView(p auth.Platform) PlatformView {
	v := PlatformView{ID: p.ID, Object: "platform", Name: p.Name, KeyPrefix: p.Prefix, ReturnURLHosts: p.ReturnURLHosts,
		CreatedAt: p.CreatedAt.UTC(), RevokedAt: optTime(p.RevokedAt)}
	if v.ReturnURLHosts == nil {
		v.ReturnURLHosts = []string{}
	}
	return v
}

type createPlatformBody struct {
	Name           string   `json:"name"`
	ReturnURLHosts []string `json:"return_url_hosts"`
}

func (s *Server) needAuth(f func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Auth == nil {
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EUNAVAILABLE, "accounts are not configured on this server"))
			return
		}
		f(w, r)
	})
}

// createPlatform answers POST /admin/platforms.
func (s *Server) createPlatform(w http.ResponseWriter, r *http.Request) {
	var b createPlatformBody
	if err := ReadJSON(r, &b, false); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	key, p, err := s.Auth.CreatePlatform(r.Context(), b.Name, b.ReturnURLHosts)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().Info("platform created", "platform", p.ID, "name", p.Name, "actor", actorOf(r))
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusCreated, PlatformCreated{PlatformView: platformView(p), Key: key})
}

// listPlatforms answers GET /admin/platforms: every platform (at most
// auth.MaxPlatforms), oldest first.
func (s *Server) listPlatforms(w http.ResponseWriter, r *http.Request) {
	ps, err := s.Auth.Platforms(r.Context())
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	out := Page[PlatformView]{Object: "list", Data: make([]PlatformView, 0, len(ps))}
	for _, p := range ps {
		out.Data = append(out.Data, platformView(p))
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, out)
}

// revokePlatform answers DELETE /admin/platforms/{id}: the key stops
// working at once; the platform's users' accounts and their keys stay.
// Its webhook endpoints are disabled, so its users' events stop reaching
// the app (they are kept, and delivered if the admin enables one again).
// Revoking again disables any endpoint left enabled: a revoke cut short
// is finished by repeating it.
func (s *Server) revokePlatform(w http.ResponseWriter, r *http.Request) {
	p, err := s.Auth.RevokePlatform(r.Context(), r.PathValue("id"))
	if err == nil && s.Webhooks != nil {
		err = s.disablePlatformEndpoints(r, p.ID)
	}
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().Info("platform revoked", "platform", p.ID, "actor", actorOf(r))
	WriteJSON(w, http.StatusOK, platformView(p))
}

// disablePlatformEndpoints disables every enabled endpoint of platform
// (at most webhook.MaxPlatformEndpoints of them).
func (s *Server) disablePlatformEndpoints(r *http.Request, platform string) error {
	es, err := s.Webhooks.ListEndpoints(r.Context(), webhook.EndpointQuery{Platform: platform, Limit: webhook.MaxEndpoints})
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.Disabled() {
			continue
		}
		if _, err := s.Webhooks.SetEndpointDisabled(r.Context(), e.ID, s.now(), "platform "+platform+" revoked"); err != nil {
			return err
		}
		s.log().Info("webhook endpoint disabled: its platform was revoked", "endpoint", e.ID, "platform", platform, "actor", actorOf(r))
	}
	return nil
}
