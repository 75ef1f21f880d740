package web

import (
	"net/http"
)

// maxModels is how many models a package card estimates tokens for.
const maxModels = 3

type packageView struct {
	ID       string
	Label    string
	Yuan     string
	Credits  string
	Tokens   []tokenView
	Selected bool
}

type tokenView struct {
	Model, Count string
}

type checkoutBody struct {
	Packages   []packageView
	AccountURL string
}

// checkoutConfig is what checkout.js reads.
type checkoutConfig struct {
	Base        string            `json:"base"`
	Selected    string            `json:"selected"`
	Sandbox     bool              `json:"sandbox"`
	SandboxPath string            `json:"sandbox_path"`
	Merchant    string            `json:"merchant"`
	Lang        string            `json:"lang"`
	Messages    map[string]string `json:"messages"`
}

// checkoutPage answers GET /checkout/{session}: the packages, and with
// ?package=ID (or a package in the session) that package's QR at once.
func (h *Handler) checkoutPage(w http.ResponseWriter, r *http.Request) {
	s, ok := h.sessionPage(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	pkgs, err := h.Catalog.Packages(ctx)
	if err != nil {
		h.internalPage(w, r, err)
		return
	}
	models, err := h.Catalog.ModelPrices(ctx)
	if err != nil {
		h.internalPage(w, r, err)
		return
	}
	if len(models) > maxModels {
		models = models[:maxModels]
	}
	p := h.newPage(w, r, "title.checkout")
	selected := s.PackageID
	if q := r.URL.Query().Get("package"); q != "" {
		selected = q
	}
	body := checkoutBody{AccountURL: "/account/" + r.PathValue("session")}
	found := false
	for _, pk := range pkgs {
		v := packageView{ID: pk.ID, Yuan: pk.Fen.String(), Credits: compact(int64(pk.Credits), p.Lang), Selected: pk.ID == selected,
			Label: pk.Labels[p.Lang]}
		found = found || v.Selected
		for _, m := range models {
			if n := tokensFor(int64(pk.Credits), m); n > 0 {
				v.Tokens = append(v.Tokens, tokenView{Model: m.Model, Count: compact(n, p.Lang)})
			}
		}
		body.Packages = append(body.Packages, v)
	}
	if !found {
		selected = "" // an unknown ?package= just shows the list
	}
	p.Body = body
	p.Script = "checkout.js"
	p.Expires = formatTime(s.ExpiresAt)
	p.ConfigJSON = jsConfig(checkoutConfig{
		Base: "/checkout/" + r.PathValue("session"), Selected: selected, Sandbox: h.Sandbox,
		SandboxPath: h.sandboxPath(), Merchant: h.merchant(), Lang: p.Lang, Messages: messages[p.Lang],
	})
	h.render(w, r, http.StatusOK, "checkout", p)
}
