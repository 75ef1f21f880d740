package httpapi

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"time"

	"tollgate"
	"tollgate/catalog"
	"tollgate/pricing"
)

// Catalogs is the catalog in force and its reload (serve's live catalog).
type Catalogs interface {
	// Current is the catalog in force and when it was loaded.
	Current() (*catalog.Catalog, time.Time)
	// Reload reads the catalog file again and puts it in force; a bad
	// file is refused and the catalog in force kept. actor is who asked,
	// logged with the outcome. Errors: ECONFLICT (no catalog file),
	// EINVALID wrapping a *catalog.Error or the reason.
	Reload(ctx context.Context, actor string) (*catalog.Catalog, time.Time, error)
}

// CatalogView is the body of GET /admin/catalog and of a reload: the
// catalog in force, its digest (instances agree when their digests do)
// and what it sells.
type CatalogView struct {
	// Source is the catalog file; else "--providers FILE" or
	// "built-in" (the mock model), priced by the built-in prices.
	Source string `json:"source"`
	// Digest is "sha256:" and catalog.Catalog.Digest: the SHA-256 of
	// the file's bytes, combined with the logo's when there is one (""
	// when built in).
	Digest     string            `json:"digest"`
	LoadedAt   time.Time         `json:"loaded_at"`
	Merchant   string            `json:"merchant"`
	Models     []string          `json:"models"`
	Advertised []string          `json:"advertised"`
	Packages   []pricing.Package `json:"packages"`
	// Catalog is the file as decoded (absent when built in); API keys
	// are never in it.
	Catalog *catalog.File `json:"catalog,omitempty"`
}

func newCatalogView(c *catalog.Catalog, at time.Time) CatalogView {
	v := CatalogView{Source: c.Source, LoadedAt: at.UTC(), Merchant: c.Name(), Models: slices.Sorted(maps.Keys(c.Gateway.Models)),
		Advertised: c.Advertised, Packages: c.Pricing.Packages}
	if c.Digest != "" {
		v.Digest = "sha256:" + c.Digest
		v.Catalog = &c.File
	}
	if v.Source == "" {
		v.Source = "built-in"
	}
	if v.Advertised == nil {
		v.Advertised = []string{}
	}
	if v.Packages == nil {
		v.Packages = []pricing.Package{}
	}
	return v
}

// catalogErrorBody is a refused reload: the error, and each problem of the
// file with its path.
type catalogErrorBody struct {
	APIError
	Problems []catalog.Problem `json:"problems,omitempty"`
}

func (s *Server) catalogShow(w http.ResponseWriter, r *http.Request) {
	if s.Catalogs == nil {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.ENOTFOUND, "no catalog is configured"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, newCatalogView(s.Catalogs.Current()))
}

func (s *Server) catalogReload(w http.ResponseWriter, r *http.Request) {
	if s.Catalogs == nil {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.ENOTFOUND, "no catalog is configured"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	// The reload logs its outcome with who asked (one line, the same for
	// SIGHUP).
	c, at, err := s.Catalogs.Reload(r.Context(), actorOf(r))
	if err != nil {
		status, code, kind, msg := shown(r, s.log(), err)
		body := catalogErrorBody{APIError: APIError{Error: APIErrorBody{Message: msg, Type: kind.OpenAIType, Code: code}}}
		var ce *catalog.Error
		if errors.As(err, &ce) {
			body.Problems = ce.Problems
		}
		WriteJSON(w, status, body)
		return
	}
	v := newCatalogView(c, at)
	WriteJSON(w, http.StatusOK, v)
}
