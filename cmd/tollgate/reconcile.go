package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"tollgate"
	"tollgate/reconcile"
	"tollgate/wxpay"
)

const reconcileSummary = "compare one day's WeChat Pay bill with the ledger"

const reconcileHelp = `Download the WeChat Pay trade bill of --date (a China-time calendar day) and
compare it with the ledger: MISSING (paid at WeChat Pay, not credited), EXTRA
(credited that day, not paid), MISMATCHED (amount or out_trade_no /
transaction_id pairing differs), REFUND_MISSING, REFUND_EXTRA and
REFUND_MISMATCHED, with bill and ledger totals in fen. WeChat Pay makes day
T's bill from 09:00 China time on T+1.

Exit status: 0 when the bill and the ledger agree, 1 when differences are
found, 2 on errors (bad flags, bill not available, ledger unreachable).`

func init() {
	register("reconcile", reconcileSummary, runReconcile)
}

// wxpayFlags are the merchant flags, named as serve's. The v3 key files
// are read by merchantV3.load, as serve and `wxpay check` read them;
// --wxpay-mch-serial, --wxpay-mch-key-file and --wxpay-public-key-file are
// reconcile's older names of --wxpay-cert-serial, --wxpay-private-key and
// --wxpay-public-key.
type wxpayFlags struct {
	version, url, mchID, appID, apiKey, signType *string
	v3                                           *merchantV3
}

func addWxpayFlags(fs *flag.FlagSet) wxpayFlags {
	f := wxpayFlags{
		version:  fs.String("wxpay-api-version", "", "WeChat Pay API version: v2 or v3; empty: v3 when --wxpay-private-key is set, else v2"),
		url:      fs.String("wxpay-url", "", "WeChat Pay API base URL (default: WeChat Pay's production host; the emulator's URL for the sandbox)"),
		mchID:    fs.String("wxpay-mch-id", "", "merchant id (mch_id)"),
		appID:    fs.String("wxpay-appid", "", "app id bound to the merchant"),
		apiKey:   fs.String("wxpay-api-key", "", "v2 API key (32 characters)"),
		signType: fs.String("wxpay-sign-type", wxpay.SignTypeMD5, "v2 signature type: MD5 or HMAC-SHA256"),
		v3:       &merchantV3{},
	}
	// The APIv3 key file is needed here in certificate mode only.
	addV3KeyFlags(fs, &f.v3.v3Keys, true)
	return f
}

// bills returns the bill source the flags describe; warnings about the
// key files go to warn.
func (f wxpayFlags) bills(ctx context.Context, warn io.Writer) (reconcile.BillSource, error) {
	if *f.mchID == "" || *f.appID == "" {
		return nil, fmt.Errorf("--wxpay-mch-id and --wxpay-appid are required")
	}
	version := *f.version
	if version == "" {
		version = "v2"
		if f.v3.PrivateKey != "" {
			version = "v3"
		}
	}
	switch version {
	case "v2":
		if len(*f.apiKey) != 32 {
			return nil, fmt.Errorf("--wxpay-api-key must be 32 characters, got %d", len(*f.apiKey))
		}
		return reconcile.V2Bills{Client: &wxpay.V2Client{BaseURL: *f.url, AppID: *f.appID, MchID: *f.mchID,
			APIKey: *f.apiKey, SignType: *f.signType}}, nil
	case "v3":
		return f.v3Bills(ctx, warn)
	default:
		return nil, fmt.Errorf("--wxpay-api-version must be v2 or v3, got %q", version)
	}
}

// v3Bills is the v3 bill source. In certificate mode the platform
// certificates are downloaded first: they verify the bill's answers.
func (f wxpayFlags) v3Bills(ctx context.Context, warn io.Writer) (reconcile.BillSource, error) {
	s := *f.v3
	s.URL, s.MchID, s.AppID = *f.url, *f.mchID, *f.appID
	keys, problems := s.load(false)
	if len(problems) > 0 {
		return nil, fmt.Errorf("API v3:\n  - %s", strings.Join(problems, "\n  - "))
	}
	for _, w := range keys.warnings {
		fmt.Fprintln(warn, "warning:", w)
	}
	c := s.client(keys)
	if c.Certificates != nil {
		if err := c.Certificates.Refresh(ctx); err != nil {
			return nil, fmt.Errorf("WeChat Pay platform certificates: %w", err)
		}
	}
	return reconcile.V3Bills{Client: c}, nil
}

// reconcileFlags are reconcile's settings.
type reconcileFlags struct {
	date, format *string
	ledger       ledgerFlags
	wxpay        wxpayFlags
}

func reconcileFlagSet() (*flag.FlagSet, reconcileFlags) {
	fs := newFlagSet("reconcile", reconcileHelp)
	var f reconcileFlags
	f.date = fs.String("date", "", "the day to reconcile, YYYY-MM-DD in China time (required)")
	f.ledger = addLedgerFlags(fs)
	f.wxpay = addWxpayFlags(fs)
	f.format = fs.String("format", "text", "output format: text or json")
	return fs, f
}

func init() {
	deploymentFlagSets = append(deploymentFlagSets, func() *flag.FlagSet { fs, _ := reconcileFlagSet(); return fs })
}

func runReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := reconcileFlagSet()
	fs.SetOutput(stderr)
	date, lf, wf, format := f.date, f.ledger, f.wxpay, f.format
	if err := parseFlags(fs, args); err != nil {
		return failed(err)
	}
	if *date == "" {
		// No default: a bill is only complete from 09:00 China time the
		// next day, so "yesterday" would be wrong half the mornings.
		return failed(fmt.Errorf("reconcile: --date is required: the China-time day to reconcile, YYYY-MM-DD (e.g. %s)",
			time.Now().In(tollgate.Beijing).AddDate(0, 0, -1).Format(time.DateOnly)))
	}
	day, err := time.ParseInLocation(time.DateOnly, *date, tollgate.Beijing)
	if err != nil {
		return failed(fmt.Errorf("reconcile: --date must be YYYY-MM-DD, got %q", *date))
	}
	if err := checkFormat(*format); err != nil {
		return failed(fmt.Errorf("reconcile: %w", err))
	}
	bills, err := wf.bills(ctx, stderr)
	if err != nil {
		return failed(fmt.Errorf("reconcile: %w", err))
	}
	st, err := lf.open(ctx)
	if err != nil {
		return failed(fmt.Errorf("reconcile: %w", err))
	}
	defer st.Close()
	rec := reconcile.Reconciler{Bills: bills, Store: st}
	rep, err := rec.Reconcile(ctx, day)
	if err != nil {
		return failed(err)
	}
	if *format == "json" {
		err = reconcile.WriteJSON(stdout, &rep)
	} else {
		err = reconcile.WriteText(stdout, &rep)
	}
	if err != nil {
		return failed(err)
	}
	if !rep.Clean() {
		return &exitStatusError{code: 1, err: fmt.Errorf("reconcile %s: %d difference(s) found", rep.Date, len(rep.Differences))}
	}
	return nil
}
