package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"tollgate"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// pages are the parsed templates, one per page, each with the layout.
var pages = parsePages("checkout", "account", "error")

func parsePages(names ...string) map[string]*template.Template {
	funcs := template.FuncMap{"yuan": func(f tollgate.Fen) string { return f.String() }}
	m := make(map[string]*template.Template, len(names))
	for _, n := range names {
		m[n] = template.Must(template.New("layout.html").Funcs(funcs).
			ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html"))
	}
	return m
}

// assetVersion is a content hash of the embedded assets, appended to their
// URLs so a new build is never served from a stale cache.
var assetVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := assetFS.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

// page is what every template gets.
type page struct {
	Lang       string
	Title      string
	Merchant   string
	Brand      Branding // accent, logo, support, footer
	BrandVer   string
	SwitchURL  string
	Sandbox    bool
	Script     string // asset name of the page's script, "" for none
	AssetVer   string
	ConfigJSON template.JS
	Expires    string
	Body       any
}

// T returns the text of key in the page's language.
func (p page) T(key string) string { return tr(p.Lang, key) }

// Asset returns the URL of an embedded asset.
func (p page) Asset(name string) string { return "/web/assets/" + name + "?v=" + p.AssetVer }

// sessionLocale is the locale of the request's session, read even past
// its expiry (the error page of an expired link speaks it too); "" for
// none.
func (h *Handler) sessionLocale(r *http.Request) string {
	tok := r.PathValue("session")
	if tok == "" || len(h.Secret) < MinSecretLen {
		return ""
	}
	s, err := VerifySession(h.Secret, tok, time.Time{})
	if err != nil && !errors.Is(err, ErrSessionExpired) {
		return ""
	}
	return s.Locale
}

func (h *Handler) newPage(w http.ResponseWriter, r *http.Request, titleKey string) page {
	lang := pickLang(w, r, h.sessionLocale(r))
	other := langZH
	if lang == langZH {
		other = langEN
	}
	b := h.branding()
	// The switch keeps the page's other parameters (an order coming back
	// from WeChat Pay, the method, the package).
	q := url.Values{"lang": {other}}
	for _, k := range []string{"method", "order", "package"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	return page{
		Brand: b, BrandVer: brandVersion(b),
		Lang: lang, Title: tr(lang, titleKey), Merchant: h.merchant(), Sandbox: h.Sandbox,
		SwitchURL: r.URL.Path + "?" + q.Encode(), AssetVer: assetVersion,
	}
}

func (h *Handler) merchant() string {
	if b := h.branding(); b.Name != "" {
		return b.Name
	}
	return "tollgate"
}

// branding is the merchant's branding in force.
func (h *Handler) branding() Branding {
	if h.Branding != nil {
		return h.Branding()
	}
	return Branding{Name: h.MerchantName}
}

// brandVersion changes with the branding, so a page never shows an old
// colour or logo from the cache.
func brandVersion(b Branding) string {
	sum := sha256.Sum256(append([]byte(b.Accent+"\x00"+b.LogoType+"\x00"), b.Logo...))
	return hex.EncodeToString(sum[:6])
}

// brandCSS answers GET /web/brand.css: the accent colour over the
// default green.
func (h *Handler) brandCSS(w http.ResponseWriter, r *http.Request) {
	b := h.branding()
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	if b.Accent != "" && accentRE.MatchString(b.Accent) {
		fmt.Fprintf(w, ":root { --green: %s; --green-dark: %s; }\n", b.Accent, b.Accent)
	}
}

var accentRE = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// logo answers GET /web/logo: the merchant's logo, never run as a
// document (an SVG's scripts stay inert).
func (h *Handler) logo(w http.ResponseWriter, r *http.Request) {
	b := h.branding()
	if len(b.Logo) == 0 {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", b.LogoType)
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(b.Logo)
}

// render writes a page; a template failure is logged and answered 500
// with a plain message (it is a bug, tests cover every page).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	var b strings.Builder
	if err := pages[name].Execute(&b, p); err != nil {
		h.log().Error("web: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	pageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// errorBody is the content of the error page.
type errorBody struct {
	Heading, Text string
	Links         []linkView
}

// linkView is a link button of a page.
type linkView struct {
	ID, Href, Text string
	Primary        bool
}

// sessionPage verifies the session of a page request; on failure it has
// already answered with a clear page (410 expired, 404 invalid).
func (h *Handler) sessionPage(w http.ResponseWriter, r *http.Request) (Session, bool) {
	s, err := h.session(r)
	if err == nil {
		return s, true
	}
	p := h.newPage(w, r, "title.error")
	status, key := http.StatusNotFound, "err.invalid"
	if errors.Is(err, ErrSessionExpired) {
		status, key = http.StatusGone, "err.expired"
	}
	p.Title = p.T(key + ".title")
	p.Body = errorBody{Heading: p.T(key + ".title"), Text: p.T(key + ".body")}
	h.render(w, r, status, "error", p)
	return s, false
}

// internalPage answers a failed dependency with a clear page, logging the
// cause.
func (h *Handler) internalPage(w http.ResponseWriter, r *http.Request, err error) {
	h.log().Error("web: page", "path", RedactPath(r.URL.Path), "err", err)
	p := h.newPage(w, r, "err.internal.title")
	p.Body = errorBody{Heading: p.T("err.internal.title"), Text: p.T("err.internal.body")}
	status, _ := statusOf(tollgate.ErrorCode(err))
	if status < 500 {
		status = http.StatusInternalServerError
	}
	h.render(w, r, status, "error", p)
}

// formatTime shows t in China Standard Time, the zone of the payers.
func formatTime(t time.Time) string {
	return t.In(tollgate.Beijing).Format("2006-01-02 15:04")
}

// jsConfig is the JSON the page's script reads from a non-executed script
// tag: no inline script runs, so the CSP can forbid it. json.Marshal
// escapes <, > and &, so no value can close the tag.
func jsConfig(v any) template.JS {
	b, _ := json.Marshal(v)
	return template.JS(b)
}

// asset serves an embedded CSS or JS file, cached for a year (its URL
// carries the content hash).
func (h *Handler) asset(w http.ResponseWriter, r *http.Request) {
	name := path.Base(r.PathValue("file"))
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(b)
}
