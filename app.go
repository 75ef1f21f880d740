package tollgate

import "context"

// App is an app acting for its own users (docs/DESIGN.md §4.12): a
// platform, authenticated with its platform key, or the operator with the
// admin token, who may act for any platform. The HTTP layer puts it in
// the context of the routes that find or create an app's user by its
// external_id (POST /v1/checkout/sessions, POST /v1/account/links).
type App struct {
	// Platform is the platform's id when a platform key authenticated
	// the request; "" for the admin.
	Platform string
	// ReturnURLHosts, for a platform, are the only hosts its checkouts
	// may send the user back to (none: any).
	ReturnURLHosts []string
	// Admin is true for the admin token: it names the platform it acts
	// for in the request ("" for accounts without a platform).
	Admin bool
}

type appKey struct{}

// WithApp returns ctx carrying a.
func WithApp(ctx context.Context, a App) context.Context { return context.WithValue(ctx, appKey{}, a) }

// AppFrom returns the App of ctx, if any.
func AppFrom(ctx context.Context) (App, bool) {
	a, ok := ctx.Value(appKey{}).(App)
	return a, ok
}
