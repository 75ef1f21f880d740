package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"tollgate/payment"
	"tollgate/wxpay"
)

const wxpaySummary = "check the WeChat Pay merchant settings: 'wxpay check' makes signed read-only calls and names what is wrong"

const wxpayCheckHelp = `Check the API v3 merchant settings serve would use, with signed read-only
calls to WeChat Pay (a query of an order number that exists nowhere, and the
platform certificate or public key check): the merchant id, the private key
and its certificate serial, the APIv3 key, WeChat Pay's public key or
platform certificates, the machine's clock and the network. Each check is
printed, a failing one with what to fix. A call WeChat Pay fails for a
moment (5xx SYSTEM_ERROR, 429 FREQUENCY_LIMITED, a network error) is made
again, 3 times in all; one still failing is reported as WeChat Pay's fault
on the connection check, not as a setting. It changes nothing at WeChat Pay.
serve --mode production runs the same checks at start.

Exit status: 0 when every check passes, 1 otherwise.`

// preflightTimeout bounds the preflight's calls together.
const preflightTimeout = time.Minute

func init() {
	register("wxpay", wxpaySummary, runWxpay)
	deploymentFlagSets = append(deploymentFlagSets, func() *flag.FlagSet { fs, _ := wxpayCheckFlagSet(); return fs })
}

// wxpayCheckFlags are `wxpay check`'s settings: serve's WeChat Pay
// merchant flags, and its API version (the check covers API v3 only).
type wxpayCheckFlags struct {
	version string
	merchantV3
}

// wxpayCheckFlagSet declares serve's WeChat Pay merchant flags.
func wxpayCheckFlagSet() (*flag.FlagSet, *wxpayCheckFlags) {
	fs := newFlagSet("wxpay check", wxpayCheckHelp)
	s := &wxpayCheckFlags{}
	fs.StringVar(&s.version, "wxpay-api-version", "", "the deployment's WeChat Pay API version: the check covers v3 only, and refuses v2 (exit 1); empty: v3")
	fs.StringVar(&s.URL, "wxpay-url", wxpay.DefaultV3BaseURL, "WeChat Pay API base URL")
	fs.StringVar(&s.MchID, "wxpay-mch-id", "", "merchant id (mch_id)")
	fs.StringVar(&s.AppID, "wxpay-appid", "", "app id bound to the merchant")
	addV3KeyFlags(fs, &s.v3Keys, false)
	return fs, s
}

// runWxpay dispatches `tollgate wxpay <action>`.
func runWxpay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, "Usage: tollgate wxpay check [flags]\n\n"+wxpaySummary+
			".\nRun 'tollgate wxpay check --help' for its flags.")
		return nil
	}
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "Usage: tollgate wxpay check [flags]")
		return errors.New("wxpay: the only action is check")
	}
	fs, s := wxpayCheckFlagSet()
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	switch s.version {
	case "", payment.APIv3:
	case payment.APIv2:
		// A v2 deployment's configuration has none of v3's keys: saying
		// they are missing would send the operator after the wrong thing.
		return &exitStatusError{code: 1, err: errors.New("wxpay check covers WeChat Pay API v3 only: this configuration uses API v2 " +
			"(--wxpay-api-version v2), whose settings it does not check. To check API v3 keys, run it with --wxpay-api-version v3 and the v3 key flags")}
	default:
		return &exitStatusError{code: 1, err: fmt.Errorf("wxpay check: --wxpay-api-version must be v2 or v3, not %q", s.version)}
	}
	results, warnings := checkMerchant(ctx, s.merchantV3)
	fmt.Fprintf(stdout, "WeChat Pay API v3 at %s, merchant %s, app %s\n", s.URL, s.MchID, s.AppID)
	for _, w := range warnings {
		fmt.Fprintf(stdout, "  warn  %s\n", w)
	}
	printChecks(stdout, results)
	failed, outage := preflightFailures(results)
	if len(failed) > 0 {
		if outage {
			fmt.Fprintln(stdout, "WeChat Pay did not answer: the settings are not checked yet; run the check again when it does")
		}
		return &exitStatusError{code: 1, err: fmt.Errorf("wxpay check: %d of %d checks failed", len(failed), len(results))}
	}
	fmt.Fprintf(stdout, "all %d checks passed\n", len(results))
	return nil
}

// checkMerchant reads s's key files and runs the preflight with them. A key
// file that cannot be used fails the configuration check, and the calls
// are then not made.
func checkMerchant(ctx context.Context, s merchantV3) (results []wxpay.CheckResult, warnings []string) {
	keys, problems := s.load(true)
	if len(problems) > 0 {
		// Preflight names these too, but it needs the keys to run.
		if s.AppID == "" {
			problems = append([]string{"no --wxpay-appid: the AppID bound to the merchant"}, problems...)
		}
		if s.MchID == "" {
			problems = append([]string{"no --wxpay-mch-id: the merchant id (mch_id)"}, problems...)
		}
		for _, p := range problems {
			results = append(results, wxpay.CheckResult{Name: wxpay.CheckConfig, Problem: p})
		}
		// The later checks as Preflight reports them when it cannot sign a
		// request: without a merchant key it makes no call, and says "not
		// checked" of each check after the configuration.
		for _, r := range (&wxpay.V3Client{BaseURL: s.URL, MchID: s.MchID}).Preflight(ctx) {
			if r.Name != wxpay.CheckConfig {
				results = append(results, r)
			}
		}
		return results, nil
	}
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	return s.client(keys).Preflight(ctx), keys.warnings
}

// printChecks prints one line per check.
func printChecks(w io.Writer, results []wxpay.CheckResult) {
	for _, r := range results {
		if r.OK {
			fmt.Fprintf(w, "  ok    %s\n", r.Name)
			continue
		}
		fmt.Fprintf(w, "  FAIL  %s: %s\n", r.Name, r.Problem)
	}
}

// preflightFailures collects the failed checks of Preflight's results,
// each "name: problem", for `wxpay check` and serve alike. outage reports
// that the failures say nothing against the settings: the connection
// check failed (WeChat Pay out of reach, or answering with its own 5xx
// fault), and every other failed check was "not checked" for want of
// WeChat Pay's answer. A configuration, clock, key or signature problem is
// never an outage.
func preflightFailures(results []wxpay.CheckResult) (failed []string, outage bool) {
	unreachable, other := false, false
	for _, r := range results {
		if r.OK {
			continue
		}
		failed = append(failed, r.Name+": "+r.Problem)
		switch {
		case strings.HasPrefix(r.Problem, preflightNotChecked):
		case r.Name == wxpay.CheckConnection:
			unreachable = true
		default:
			other = true
		}
	}
	return failed, unreachable && !other
}

// preflightNotChecked starts the problem of a check Preflight could not
// run (wxpay.CheckResult).
const preflightNotChecked = "not checked:"
