package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

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

// wxpayCheckFlagSet declares serve's WeChat Pay merchant flags.
func wxpayCheckFlagSet() (*flag.FlagSet, *merchantV3) {
	fs := newFlagSet("wxpay check", wxpayCheckHelp)
	s := &merchantV3{}
	fs.StringVar(&s.URL, "wxpay-url", wxpay.DefaultV3BaseURL, "WeChat Pay API base URL")
	fs.StringVar(&s.MchID, "wxpay-mch-id", "", "merchant id (mch_id)")
	fs.StringVar(&s.AppID, "wxpay-appid", "", "app id bound to the merchant")
	fs.StringVar(&s.PrivateKey, "wxpay-private-key", "", "file of the merchant API private key (apiclient_key.pem)")
	fs.StringVar(&s.CertSerial, "wxpay-cert-serial", "", "serial number (hex) of the merchant API certificate of that key")
	fs.StringVar(&s.APIv3Key, "wxpay-apiv3-key-file", "", "file holding the APIv3 key (32 characters)")
	fs.StringVar(&s.PublicKey, "wxpay-public-key", "", "file of the WeChat Pay public key (pub_key.pem); neither it nor its id: platform certificates")
	fs.StringVar(&s.PublicKeyID, "wxpay-public-key-id", "", "id of that public key (PUB_KEY_ID_...)")
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
	results, warnings := checkMerchant(ctx, *s)
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
