package reliability

// S13: reconciliation. After quiescence `tollgate reconcile` must find the
// emulator's bill and the ledger in agreement; then rows are injected into
// a copy of the bill (never into the ledger or the emulator) and
// reconcile.Compare must list exactly the injected rows.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"os/exec"
	"slices"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/reconcile"
	"tollgate/wxpay"
)

// ReconcileCLI runs `tollgate reconcile --format json` for day against the
// emulator and the database, and returns its exit status and report. In
// production a run that exits 2 is made again, up to three runs in all, as
// a scheduled reconcile is: on API v3 it first downloads the platform
// certificates, which the emulator's SYSTEM_ERROR faults (on 5 % of
// queries) may refuse.
func ReconcileCLI(ctx context.Context, bin, dbURL string, cl *Cluster, day time.Time) (int, reconcile.Report, string, error) {
	for attempt := 1; ; attempt++ {
		code, rep, stderr, err := reconcileCLI(ctx, bin, dbURL, cl, day)
		if code != 2 || cl.Keys == nil || attempt == 3 {
			return code, rep, stderr, err
		}
	}
}

func reconcileCLI(ctx context.Context, bin, dbURL string, cl *Cluster, day time.Time) (int, reconcile.Report, string, error) {
	args := []string{"reconcile", "--date", day.In(tollgate.Beijing).Format(time.DateOnly),
		"--database-url", dbURL, "--format", "json",
		"--wxpay-url", cl.Sim, "--wxpay-mch-id", cl.SimConfig.MchID, "--wxpay-appid", cl.SimConfig.AppID}
	if k := cl.Keys; k != nil {
		// serve's flag names; platform certificate mode.
		args = append(args, "--wxpay-api-version", "v3", "--wxpay-private-key", k.MerchantKey,
			"--wxpay-cert-serial", k.MerchantSerial, "--wxpay-apiv3-key-file", k.APIv3KeyFile)
	} else {
		args = append(args, "--wxpay-api-version", "v2", "--wxpay-api-key", cl.SimConfig.APIKey)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return -1, reconcile.Report{}, errb.String(), err
	}
	var rep reconcile.Report
	if code != 2 {
		if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
			return code, rep, out.String() + errb.String(), fmt.Errorf("reconcile output: %w", jerr)
		}
	}
	return code, rep, errb.String(), nil
}

// Injected is a difference S13 put into the bill copy on purpose.
type Injected struct {
	Kind       reconcile.Kind
	OutTradeNo string
}

// ReconcileInjected downloads day's bill from the emulator, injects n
// missing (a SUCCESS row with no lot), n extra (a SUCCESS row removed whose
// lot was credited that day) and n mismatched (a row's 订单金额 +1 fen)
// payments into a copy, and runs reconcile.Compare on it with the ledger's
// rows. It returns what it injected and the report.
func ReconcileInjected(ctx context.Context, cl *Cluster, d *ledger.Dump, day time.Time, n int, seed int64) ([]Injected, reconcile.Report, error) {
	src, err := cl.bills(ctx)
	if err != nil {
		return nil, reconcile.Report{}, err
	}
	bill, err := src.Bill(ctx, day)
	if err != nil {
		return nil, reconcile.Report{}, err
	}
	start, end := reconcile.DayBounds(day, nil)
	lotOf := map[string]ledger.Lot{}
	for _, l := range d.Lots {
		lotOf[l.OutTradeNo] = l
	}
	refunded := map[string]bool{}
	for _, r := range bill.Records {
		if r.TradeState != "SUCCESS" {
			refunded[r.OutTradeNo] = true
		}
	}
	// Candidates: SUCCESS rows of orders never refunded whose lot was
	// credited on the day, in a seeded order.
	var cand []int
	for i, r := range bill.Records {
		l, ok := lotOf[r.OutTradeNo]
		if r.TradeState == "SUCCESS" && !refunded[r.OutTradeNo] && ok && !l.CreatedAt.Before(start) && l.CreatedAt.Before(end) {
			cand = append(cand, i)
		}
	}
	if len(cand) < 2*n {
		return nil, reconcile.Report{}, fmt.Errorf("S13: only %d bill rows to alter, need %d", len(cand), 2*n)
	}
	rng := rand.New(rand.NewSource(seed))
	rng.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	var inj []Injected
	drop := map[int]bool{}
	recs := slices.Clone(bill.Records)
	for k := 0; k < n; k++ { // extra: the lot stays, its bill row goes
		i := cand[k]
		drop[i] = true
		inj = append(inj, Injected{reconcile.Extra, recs[i].OutTradeNo})
	}
	for k := n; k < 2*n; k++ { // mismatched: the bill says one fen more
		i := cand[k]
		recs[i].TotalFee++
		inj = append(inj, Injected{reconcile.Mismatched, recs[i].OutTradeNo})
	}
	var copyRecs []wxpay.BillRecord
	for i, r := range recs {
		if !drop[i] {
			copyRecs = append(copyRecs, r)
		}
	}
	for k := 0; k < n; k++ { // missing: paid at WeChat Pay, never credited
		r := recs[cand[0]]
		r.OutTradeNo = fmt.Sprintf("tgS13MISSING%02d%010d", k, rng.Int63n(1e10))
		r.TransactionID = fmt.Sprintf("42S13%023d", rng.Int63())
		r.Fields = nil
		copyRecs = append(copyRecs, r)
		inj = append(inj, Injected{reconcile.Missing, r.OutTradeNo})
	}
	b := *bill
	b.Records = copyRecs
	b.Summary.Count = int64(len(copyRecs))
	b.Summary.TotalFee, b.Summary.RefundFee = 0, 0
	for _, r := range copyRecs {
		b.Summary.TotalFee += r.TotalFee
		b.Summary.RefundFee += r.RefundFee
	}
	rep := reconcile.Compare(reconcile.Input{Day: day, Bill: &b, Lots: d.Lots, Refunds: d.Refunds})
	return inj, rep, nil
}

// bills is where the harness downloads the emulator's bills itself: API v2
// with the emulator's key, or in production API v3 with the operator's
// merchant key, the platform certificates downloaded and decrypted first.
func (cl *Cluster) bills(ctx context.Context) (reconcile.BillSource, error) {
	k := cl.Keys
	if k == nil {
		return reconcile.V2Bills{Client: &wxpay.V2Client{BaseURL: cl.Sim, AppID: cl.SimConfig.AppID, MchID: cl.SimConfig.MchID,
			APIKey: cl.SimConfig.APIKey, SignType: wxpay.SignTypeMD5}}, nil
	}
	c := &wxpay.V3Client{BaseURL: cl.Sim, MchID: k.MchID, AppID: k.AppID, MerchantSerialNo: k.MerchantSerial,
		MerchantKey: k.MerchantPrivateKey, APIv3Key: k.APIv3Key, Keyring: wxpay.NewV3Keyring()}
	certs := wxpay.NewV3Certificates(c)
	certs.Logger = slog.New(slog.DiscardHandler)
	var err error
	for range 3 { // SYSTEM_ERROR faults answer 5 % of queries
		if err = certs.Refresh(ctx); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("S13: platform certificates: %w", err)
	}
	return reconcile.V3Bills{Client: c}, nil
}
