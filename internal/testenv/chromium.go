package testenv

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath finds a Chromium binary: $TOLLGATE_CHROMIUM, Debian's
// /usr/bin/chromium, or one on PATH; "" when there is none.
func ChromiumPath() string {
	if p := os.Getenv("TOLLGATE_CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// MustChromium starts headless Chromium with a fresh profile and no
// background networking (this machine's network is closed), and returns a
// browser context that ends with the test, and the folder screenshots go
// to ($TOLLGATE_TEST_OUT, else a temporary directory). Without Chromium the
// test is skipped with a message, unless TOLLGATE_REQUIRE_SERVICES=1.
func MustChromium(tb testing.TB) (ctx context.Context, outDir string) {
	tb.Helper()
	path := ChromiumPath()
	if path == "" {
		unavailable(tb, "Chromium (apt-get install chromium, or set TOLLGATE_CHROMIUM)", exec.ErrNotFound)
		return nil, ""
	}
	outDir = os.Getenv("TOLLGATE_TEST_OUT")
	if outDir == "" {
		outDir = tb.TempDir()
	} else if err := os.MkdirAll(outDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	tb.Cleanup(cancelA)
	ctx, cancel := context.WithTimeout(actx, 3*time.Minute)
	tb.Cleanup(cancel)
	ctx, cancelC := chromedp.NewContext(ctx)
	tb.Cleanup(cancelC)
	tb.Logf("screenshots in %s", outDir)
	return ctx, outDir
}
