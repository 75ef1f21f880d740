package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
printed, a failing one with what to fix. It changes nothing at WeChat Pay.
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
	failed := printChecks(stdout, results)
	if failed > 0 {
		return &exitStatusError{code: 1, err: fmt.Errorf("wxpay check: %d of %d checks failed", failed, len(results))}
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
		for _, name := range []string{wxpay.CheckConnection, wxpay.CheckClock, wxpay.CheckMerchant, wxpay.CheckWechatpay, wxpay.CheckAPIv3Key} {
			results = append(results, wxpay.CheckResult{Name: name, Problem: "not checked: fix the configuration first"})
		}
		return results, nil
	}
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	return s.client(keys).Preflight(ctx), keys.warnings
}

// printChecks prints one line per check and returns how many failed.
func printChecks(w io.Writer, results []wxpay.CheckResult) (failed int) {
	for _, r := range results {
		if r.OK {
			fmt.Fprintf(w, "  ok    %s\n", r.Name)
			continue
		}
		failed++
		fmt.Fprintf(w, "  FAIL  %s: %s\n", r.Name, r.Problem)
	}
	return failed
}
