package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"tollgate"
	"tollgate/auth"
	"tollgate/payment"
)

// codedError is an error with an OpenAI-style public code.
type codedError struct {
	err    *tollgate.Error
	public string
}

func (e codedError) Error() string      { return e.err.Error() }
func (e codedError) PublicCode() string { return e.public }
func (e codedError) Unwrap() error      { return e.err }

var (
	errMissingKey = codedError{tollgate.Errorf(tollgate.EUNAUTHORIZED,
		"no API key provided: send Authorization: Bearer <key>"), "missing_api_key"}
	errInvalidKey = codedError{tollgate.Errorf(tollgate.EUNAUTHORIZED,
		"invalid API key"), "invalid_api_key"}
	errAdmin = codedError{tollgate.Errorf(tollgate.EUNAUTHORIZED,
		"this route needs the admin token: send Authorization: Bearer <admin token>"), "invalid_admin_token"}
	errAdminInQuery = codedError{tollgate.Errorf(tollgate.EINVALID,
		"never put the admin token in a URL (it ends up in logs and browser history): send it as Authorization: Bearer <admin token>"), "admin_token_in_query"}
	errDisabled = codedError{auth.ErrAccountDisabled, "account_disabled"}
)

// bearer returns the credential of a request: the Authorization Bearer
// token, or the x-api-key header Anthropic clients send, or on the Gemini
// API's routes (/v1beta/) the x-goog-api-key header Google's SDKs send.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return ""
		}
		return strings.TrimSpace(tok)
	}
	if k := r.Header.Get("X-Goog-Api-Key"); k != "" && isGeminiPath(r.URL.Path) {
		return strings.TrimSpace(k)
	}
	return strings.TrimSpace(r.Header.Get("X-Api-Key"))
}

// authenticate finds the caller of r: an API key through Auth, or a
// provisional access token through Payments. The error is always
// EUNAUTHORIZED unless a dependency failed; it never echoes the key.
func (s *Server) authenticate(r *http.Request) (tollgate.Caller, error) {
	tok := bearer(r)
	if tok == "" {
		return tollgate.Caller{}, errMissingKey
	}
	if payment.IsAccessToken(tok) && s.Payments != nil {
		account, grant, err := s.Payments.AuthenticateAccessToken(r.Context(), tok)
		if tollgate.ErrorCode(err) == tollgate.EUNAUTHORIZED {
			return tollgate.Caller{}, errInvalidKey
		}
		if err != nil {
			return tollgate.Caller{}, err
		}
		if err := s.checkAccount(r, account); err != nil {
			if errors.Is(err, auth.ErrAccountDisabled) {
				return tollgate.Caller{}, errDisabled
			}
			return tollgate.Caller{}, err
		}
		return tollgate.Caller{Account: account, KeyID: "provisional", GrantID: grant, Provisional: true}, nil
	}
	k, err := s.Auth.Authenticate(r.Context(), tok)
	if tollgate.ErrorCode(err) == tollgate.EUNAUTHORIZED {
		return tollgate.Caller{}, errInvalidKey
	}
	if errors.Is(err, auth.ErrAccountDisabled) {
		return tollgate.Caller{}, errDisabled
	}
	if err != nil {
		return tollgate.Caller{}, err
	}
	return tollgate.Caller{Account: k.Account, KeyID: k.ID, Limits: k.Limits}, nil
}

// checkAccount refuses a disabled account's provisional token (keys are
// refused by Auth.Authenticate itself).
func (s *Server) checkAccount(r *http.Request, account tollgate.AccountID) error {
	if s.Auth == nil {
		return nil
	}
	return s.Auth.CheckAccount(r.Context(), account)
}

// WithAuth authenticates every request before next and puts the caller in
// the context (tollgate.WithCaller), for the handlers here and the
// gateway's. A missing or bad credential is answered 401 in OpenAI's shape
// with a WWW-Authenticate header.
func (s *Server) WithAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r)
		if err != nil {
			if tollgate.ErrorCode(err) == tollgate.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
			}
			if r.URL.Path == "/v1/messages" || r.URL.Path == "/v1/messages/count_tokens" {
				writeAnthropicError(w, r, s.log(), err)
				return
			}
			if isGeminiPath(r.URL.Path) {
				writeGeminiError(w, r, s.log(), err)
				return
			}
			WriteError(w, r, s.log(), err)
			return
		}
		next.ServeHTTP(w, r.WithContext(tollgate.WithCaller(r.Context(), c)))
	})
}

// withAdmin lets a request through only with the admin token, compared in
// constant time. With no admin token configured every request is refused.
// A query string that carries the admin token (under any parameter name)
// is refused outright, 400, whatever the header says: URLs are logged.
// The request's actor (ActorHeader, DefaultActor without it) is read here
// for every admin handler (actorOf); a malformed one is 400.
func (s *Server) withAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if adminTokenInQuery(r, s.AdminToken) {
			WriteError(w, r, s.log(), errAdminInQuery)
			return
		}
		if !auth.TokenEqual(bearer(r), s.AdminToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate-admin"`)
			WriteError(w, r, s.log(), errAdmin)
			return
		}
		actor, err := readActor(r)
		if err != nil {
			WriteError(w, r, s.log(), err)
			return
		}
		next.ServeHTTP(w, r.WithContext(withActor(r.Context(), actor)))
	})
}

// WithAppOrAuth lets an app act for its users (tollgate.App in the
// context): a platform key (auth.PlatformKeyPrefix) authenticated by
// Auth, or the admin token; any other credential goes through WithAuth.
// A bad platform key is 401 and never falls back to an API key. The admin
// token is checked as withAdmin checks it (ActorHeader, the token in the
// query string); a platform key has no actor.
func (s *Server) WithAppOrAuth(next http.Handler) http.Handler {
	keyed := s.WithAuth(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		switch {
		case strings.HasPrefix(tok, auth.PlatformKeyPrefix) && s.Auth != nil:
			p, err := s.Auth.AuthenticatePlatform(r.Context(), tok)
			if err != nil {
				if tollgate.ErrorCode(err) == tollgate.EUNAUTHORIZED {
					w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
					err = errInvalidPlatformKey
				}
				WriteError(w, r, s.log(), err)
				return
			}
			next.ServeHTTP(w, r.WithContext(tollgate.WithApp(r.Context(),
				tollgate.App{Platform: p.ID, ReturnURLHosts: p.ReturnURLHosts})))
		case tok != "" && auth.TokenEqual(tok, s.AdminToken):
			// As on every admin route (withAdmin): the admin token in the
			// query string is refused, and so is a malformed actor, before
			// anything is found or made; the actor is the request's.
			if adminTokenInQuery(r, s.AdminToken) {
				WriteError(w, r, s.log(), errAdminInQuery)
				return
			}
			actor, err := readActor(r)
			if err != nil {
				WriteError(w, r, s.log(), err)
				return
			}
			ctx := withActor(tollgate.WithApp(r.Context(), tollgate.App{Admin: true}), actor)
			next.ServeHTTP(w, r.WithContext(ctx))
		default:
			keyed.ServeHTTP(w, r)
		}
	})
}

var errInvalidPlatformKey = codedError{tollgate.Errorf(tollgate.EUNAUTHORIZED, "invalid platform key"), "invalid_platform_key"}

// callerOf returns the caller WithAuth stored; handlers behind WithAuth
// always have one.
func callerOf(r *http.Request) tollgate.Caller {
	c, _ := tollgate.CallerFrom(r.Context())
	return c
}

// writeAnthropicError writes err in Anthropic's error shape,
// {"type":"error","error":{"type":..,"message":..}}, for /v1/messages
// clients (Anthropic SDKs parse that shape, not OpenAI's), with the status
// and logging of WriteError.
func writeAnthropicError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, _, kind, msg := shown(r, log, err)
	typ := kind.AnthropicType
	if status == http.StatusRequestEntityTooLarge {
		typ = "request_too_large"
	}
	WriteJSON(w, status, map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
}

// adminTokenInQuery reports whether r's query string carries the admin
// token, or a parameter named like a credential (token, admin_token,
// access_token, api_key, key): such a request is refused, never honoured.
func adminTokenInQuery(r *http.Request, token string) bool {
	for name, vs := range r.URL.Query() {
		switch strings.ToLower(name) {
		case "token", "admin_token", "access_token", "api_key", "key", "authorization":
			return true
		}
		for _, v := range vs {
			if token != "" && auth.TokenEqual(v, token) {
				return true
			}
		}
	}
	return false
}
