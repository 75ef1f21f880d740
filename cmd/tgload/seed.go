package main

// -mode seedledger fills a fresh ledger with valid rows fast, for the
// report benchmarks (ledgerbench.sh): the store's own Open runs its
// migrations, so the schema is the real one, then plain SQL inserts (SQLite)
// or COPY (PostgreSQL) write accounts, SUCCESS payment orders with their
// lots, usage records each with its settled hold, and succeeded refunds, in
// big transactions (PostgreSQL: pgChunk rows each). On PostgreSQL each
// table's secondary indexes are dropped for its COPY and built again after
// it (one sort instead of ten million random inserts), and the session
// runs as a replica
// (session_replication_role: no per-row foreign-key checks, and the usage
// rollup's statement trigger does not collect ten million rows it would
// ignore) when its user may. Last, serve's own usage roller
// (ledger.UsageRoller over the store) rolls every closed day into
// usage_daily, so the ledger is the one a running serve leaves: the
// revenue report reads rolled days, not per-call records. The rows pass
// `tollgate audit`. -mode billserve answers /pay/downloadbill from the
// bill files it wrote, as WeChat Pay API v2 does.

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
	"tollgate/store/postgres"
	"tollgate/store/sqlite"
)

// seedConfig is -mode seedledger's settings.
type seedConfig struct {
	data, pg         string
	orders, usage    int
	accounts, days   int
	start            string
	billDay, billDir string
	appID, mchID     string
}

// Seeded rows: every order pays seedFen fen for seedCredits credits; every
// 20th is refunded what its usage left.
const (
	seedFen      = 1000
	seedCredits  = 10000
	seedRefundEv = 20
)

func modeOf(args []string) string {
	for i, a := range args {
		switch {
		case (a == "-mode" || a == "--mode") && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, "-mode="), strings.HasPrefix(a, "--mode="):
			return a[strings.Index(a, "=")+1:]
		}
	}
	return ""
}

func runSeed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tgload seedledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c seedConfig
	fs.String("mode", "seedledger", "seedledger")
	fs.StringVar(&c.data, "data", "", "SQLite data directory to create (must not hold a ledger yet)")
	fs.StringVar(&c.pg, "pg", "", "PostgreSQL URL of an empty database (instead of -data)")
	fs.IntVar(&c.orders, "orders", 20000, "paid orders (one lot each)")
	fs.IntVar(&c.usage, "usage", 200000, "usage records (one settled hold each)")
	fs.IntVar(&c.accounts, "accounts", 0, "accounts (default orders/10)")
	fs.IntVar(&c.days, "days", 28, "days the orders and usage are spread over")
	fs.StringVar(&c.start, "start", "2026-11-01", "first day (Beijing)")
	fs.StringVar(&c.billDay, "bill-day", "", "also write WeChat Pay's ALL bill of this day (YYYY-MM-DD) to -bill-dir")
	fs.StringVar(&c.billDir, "bill-dir", "", "directory for the bill (YYYYMMDD.csv), served by -mode billserve")
	fs.StringVar(&c.appID, "appid", "wxd930ea5d5a258f4f", "appid in the bill")
	fs.StringVar(&c.mchID, "mch-id", "10000100", "mch_id in the bill")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (c.data == "") == (c.pg == "") {
		return errors.New("seedledger: exactly one of -data and -pg")
	}
	if c.orders < 1 || c.usage < 0 || c.days < 1 {
		return errors.New("seedledger: -orders ≥ 1, -usage ≥ 0, -days ≥ 1")
	}
	if c.accounts <= 0 {
		c.accounts = max(1, c.orders/10)
	}
	c.accounts = min(c.accounts, c.orders)
	start, err := time.ParseInLocation(time.DateOnly, c.start, tollgate.Beijing)
	if err != nil {
		return fmt.Errorf("seedledger: -start: %w", err)
	}
	began := time.Now()
	g := seedGen{c: c, start: start, span: time.Duration(c.days) * 24 * time.Hour}
	if c.data != "" {
		err = g.sqlite(ctx)
	} else {
		err = g.postgres(ctx)
	}
	if err != nil {
		return fmt.Errorf("seedledger: %w", err)
	}
	fmt.Fprintf(stdout, "seeded %d accounts, %d orders/lots, %d usage records and holds, %d refunds in %s\n",
		c.accounts, c.orders, c.usage, (c.orders+seedRefundEv-1)/seedRefundEv, time.Since(began).Round(time.Millisecond))
	rolled := time.Now()
	days, st, err := g.rollUp(ctx)
	if err != nil {
		return fmt.Errorf("seedledger: roll up usage: %w", err)
	}
	fmt.Fprintf(stdout, "usage roller: %d days rolled up in %s (rolled before %s)\n", days, time.Since(rolled).Round(time.Millisecond),
		st.RolledBefore.In(tollgate.Beijing).Format(time.DateOnly))
	if c.billDay != "" {
		day, err := time.ParseInLocation(time.DateOnly, c.billDay, tollgate.Beijing)
		if err != nil {
			return fmt.Errorf("seedledger: -bill-day: %w", err)
		}
		n, err := g.writeBill(day)
		if err != nil {
			return fmt.Errorf("seedledger: bill: %w", err)
		}
		fmt.Fprintf(stdout, "bill of %s: %d rows in %s\n", c.billDay, n, c.billDir)
	}
	return nil
}

// seedGen derives every row from its index, so the bill can be written
// without reading the database.
type seedGen struct {
	c     seedConfig
	start time.Time
	span  time.Duration
}

func (g seedGen) account(i int) string { return fmt.Sprintf("seed-%07d", i%g.c.accounts) }
func (g seedGen) orderAt(i int) time.Time {
	return g.start.Add(time.Duration(int64(g.span) / int64(g.c.orders) * int64(i))).UTC().Truncate(time.Microsecond)
}
func outTradeNo(i int) string    { return fmt.Sprintf("seed%010d", i) }
func transactionID(i int) string { return fmt.Sprintf("4200%016d", i) }
func refundNo(i int) string      { return fmt.Sprintf("seedr%010d", i) }

// usageOf returns the order usage record j spends (one whose account is
// the record's and that was paid before it) and its credits.
func (g seedGen) usageOf(j int) (order int, credits int64, at time.Time) {
	order = j % g.c.orders
	credits = int64(1 + j%97)
	at = g.orderAt(order).Add(time.Duration(1+j/g.c.orders) * time.Second)
	return
}

// lot is order i's lot after its usage and refund.
type seedLot struct {
	used, left, refunded int64
	refundFen            int64
}

// lots computes every lot's used credits from the usage records.
func (g seedGen) lots() []seedLot {
	ls := make([]seedLot, g.c.orders)
	for j := range g.c.usage {
		i, credits, _ := g.usageOf(j)
		ls[i].used += credits
	}
	for i := range ls {
		l := &ls[i]
		if l.used > seedCredits {
			panic("seedledger: too many usage records per order") // 97 credits at most each: > 100 records per order
		}
		l.left = seedCredits - l.used
		if i%seedRefundEv == 0 && l.left > 0 {
			l.refunded, l.left = l.left, 0
			l.refundFen = int64(ledger.RefundFen(seedFen, tollgate.Credits(l.refunded), seedCredits))
		}
	}
	return ls
}

// rowSink writes rows of one table.
type rowSink interface {
	table(ctx context.Context, name string, cols []string, n int, row func(i int) []any) error
}

// fill writes every table through s; ts turns a ledger time into the
// column's value (micros for SQLite, time.Time for PostgreSQL).
func (g seedGen) fill(ctx context.Context, s rowSink, ts func(time.Time) any) error {
	if g.c.usage > 100*g.c.orders {
		return errors.New("at most 100 usage records per order")
	}
	ls := g.lots()
	left := make([]int64, g.c.accounts)
	for i, l := range ls {
		left[i%g.c.accounts] += l.left
	}
	us := func(t time.Time) int64 { return t.UnixMicro() }
	steps := []func() error{
		func() error {
			return s.table(ctx, "accounts", []string{"id", "left_credits", "held", "debt", "created_at", "version"}, g.c.accounts,
				func(a int) []any { return []any{g.account(a), left[a], 0, 0, ts(g.start.Add(-time.Hour)), 1} })
		},
		func() error {
			return s.table(ctx, "payment_orders", []string{"out_trade_no", "account_id", "fen", "credits", "package_id", "api_version",
				"sign_type", "status", "code_url", "transaction_id", "device_fingerprint", "client_ip", "token_hash", "token_expires_at",
				"grant_cap", "expires_at", "created_at", "updated_at", "next_poll_at", "poll_attempts", "lease_owner", "lease_until",
				"review", "fee_fen"}, g.c.orders, func(i int) []any {
				at := g.orderAt(i)
				return []any{outTradeNo(i), g.account(i), seedFen, seedCredits, "seed", "v2", "MD5", "SUCCESS", "weixin://wxpay/seed",
					transactionID(i), "", "127.0.0.1", "", 0, 0, us(at.Add(2 * time.Hour)), us(at.Add(-time.Minute)), us(at), 0, 0, "", 0, "",
					(seedFen*6 + 500) / 1000}
			})
		},
		func() error {
			return s.table(ctx, "lots", []string{"id", "account_id", "out_trade_no", "transaction_id", "fen", "granted", "used",
				"left_credits", "refunding", "refunded", "refunded_fen", "created_at", "version"}, g.c.orders, func(i int) []any {
				l := ls[i]
				return []any{int64(i + 1), g.account(i), outTradeNo(i), transactionID(i), seedFen, seedCredits, l.used, l.left,
					0, l.refunded, l.refundFen, ts(g.orderAt(i)), 1}
			})
		},
		func() error {
			var idx []int
			for i, l := range ls {
				if l.refunded > 0 {
					idx = append(idx, i)
				}
			}
			return s.table(ctx, "refunds", []string{"out_refund_no", "lot_id", "account_id", "credits", "fen", "status", "created_at",
				"resolved_at", "version"}, len(idx), func(k int) []any {
				i := idx[k]
				at := g.refundAt(i)
				return []any{refundNo(i), int64(i + 1), g.account(i), ls[i].refunded, ls[i].refundFen, "succeeded", ts(at),
					ts(at.Add(time.Minute)), 1}
			})
		},
		func() error {
			return s.table(ctx, "holds", []string{"id", "account_id", "amount", "cost", "status", "created_at", "expires_at",
				"resolved_at", "version"}, g.c.usage, func(j int) []any {
				i, credits, at := g.usageOf(j)
				return []any{fmt.Sprintf("seedu%011d", j), g.account(i), credits + 100, credits, "settled", ts(at.Add(-time.Second)),
					ts(at.Add(time.Minute)), ts(at), 1}
			})
		},
		func() error {
			return s.table(ctx, "usage_records", []string{"request_id", "account_id", "key_id", "model", "provider", "deployment",
				"input_tokens", "cached_tokens", "output_tokens", "credits", "latency_us", "status", "created_at"}, g.c.usage,
				func(j int) []any {
					i, credits, at := g.usageOf(j)
					return []any{fmt.Sprintf("seedu%011d", j), g.account(i), "seedkey", "mock-gpt", "mock", "mock/mock-gpt",
						100 + j%900, 0, 10 + j%90, credits, 150000, "ok", ts(at)}
				})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// rollUp runs serve's usage roller (system clock, default grace, no
// retention) over the seeded store until every closed day is rolled up.
func (g seedGen) rollUp(ctx context.Context) (int, ledger.RollupState, error) {
	var st interface {
		ledger.UsageRollupStore
		Close() error
	}
	var err error
	if g.c.data != "" {
		st, err = sqlite.Open(ctx, filepath.Join(g.c.data, sqlite.FileName))
	} else {
		st, err = openPG(ctx, g.c.pg)
	}
	if err != nil {
		return 0, ledger.RollupState{}, err
	}
	defer st.Close()
	days, _, err := (&ledger.UsageRoller{Store: st}).RollOnce(ctx)
	if err != nil {
		return days, ledger.RollupState{}, err
	}
	state, err := st.UsageRollupState(ctx)
	return days, state, err
}

// pgStore is postgres.Store with a Close that returns an error, as
// sqlite.Store's does.
type pgStore struct{ *postgres.Store }

func (s pgStore) Close() error { s.Store.Close(); return nil }

func openPG(ctx context.Context, url string) (pgStore, error) {
	st, err := postgres.Open(ctx, url)
	return pgStore{st}, err
}

// refundAt is when order i's refund was made: an hour after its payment.
func (g seedGen) refundAt(i int) time.Time { return g.orderAt(i).Add(time.Hour) }

// sqlite seeds a new SQLite ledger under -data.
func (g seedGen) sqlite(ctx context.Context) error {
	if err := os.MkdirAll(g.c.data, 0o755); err != nil {
		return err
	}
	path := filepath.Join(g.c.data, sqlite.FileName)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists: seed a fresh directory", path)
	}
	st, err := sqlite.Open(ctx, path) // runs the migrations
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=foreign_keys(0)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return g.fill(ctx, sqliteSink{db}, func(t time.Time) any { return t.UnixMicro() })
}

type sqliteSink struct{ db *sql.DB }

func (s sqliteSink) table(ctx context.Context, name string, cols []string, n int, row func(int) []any) error {
	const batch = 200000
	q := "INSERT INTO " + name + " (" + strings.Join(cols, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(cols)-1) + ")"
	for lo := 0; lo < n; lo += batch {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, q)
		if err != nil {
			tx.Rollback()
			return fmt.Errorf("%s: %w", name, err)
		}
		for i := lo; i < min(n, lo+batch); i++ {
			if _, err := stmt.ExecContext(ctx, row(i)...); err != nil {
				tx.Rollback()
				return fmt.Errorf("%s row %d: %w", name, i, err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// postgres seeds an empty PostgreSQL database with COPY.
func (g seedGen) postgres(ctx context.Context) error {
	st, err := postgres.Open(ctx, g.c.pg) // runs the migrations
	if err != nil {
		return err
	}
	st.Close()
	conn, err := pgx.Connect(ctx, g.c.pg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM lots").Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return errors.New("the database already has lots: seed an empty one")
	}
	// Bulk-load settings of this session only. As a replica the session
	// fires no triggers: neither the foreign keys' per-row checks (the
	// seeder writes accounts, orders and lots before the rows that refer
	// to them) nor usage_rollup_late, whose transition table would hold
	// every usage record only to find none before route_before (the
	// rollup is empty: nothing is routed). It needs a superuser; without
	// it the load is slower, not different.
	for _, set := range []string{"SET synchronous_commit = off", "SET maintenance_work_mem = '512MB'"} {
		if _, err := conn.Exec(ctx, set); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		fmt.Fprintf(os.Stderr, "seedledger: %v: foreign keys and triggers stay on\n", err)
	}
	if err := g.fill(ctx, pgSink{conn}, func(t time.Time) any { return t }); err != nil {
		return err
	}
	// COPY wrote explicit lot ids: move the sequence past them, then
	// refresh the planner's statistics.
	if _, err := conn.Exec(ctx, "SELECT setval(pg_get_serial_sequence('lots', 'id'), (SELECT max(id) FROM lots))"); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "ANALYZE")
	return err
}

type pgSink struct{ conn *pgx.Conn }

// pgChunk is how many rows one COPY transaction writes: a transaction of
// ten million rows would hold back, for minutes, the usage roller of every
// other database of the server (RollUsage waits for the transactions
// running when it moved route_before to end).
const pgChunk = 500_000

// table copies n rows into name, its secondary indexes (those no
// constraint owns) dropped first and built again after.
func (s pgSink) table(ctx context.Context, name string, cols []string, n int, row func(int) []any) error {
	var names, defs []string
	rows, err := s.conn.Query(ctx, `SELECT i.indexname, i.indexdef FROM pg_indexes i
		WHERE i.schemaname = current_schema() AND i.tablename = $1
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = (quote_ident(i.indexname))::regclass)
		ORDER BY 1`, name)
	if err != nil {
		return fmt.Errorf("%s: indexes: %w", name, err)
	}
	for rows.Next() {
		var n, d string
		if err := rows.Scan(&n, &d); err != nil {
			return err
		}
		names, defs = append(names, n), append(defs, d)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: indexes: %w", name, err)
	}
	for _, ix := range names {
		if _, err := s.conn.Exec(ctx, "DROP INDEX "+pgx.Identifier{ix}.Sanitize()); err != nil {
			return fmt.Errorf("%s: drop index %s: %w", name, ix, err)
		}
	}
	for lo := 0; lo < n; lo += pgChunk {
		i, hi := lo, min(n, lo+pgChunk)
		_, err = s.conn.CopyFrom(ctx, pgx.Identifier{name}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			if i >= hi {
				return nil, nil
			}
			i++
			return row(i - 1), nil
		}))
		if err != nil {
			return fmt.Errorf("copy %s: %w", name, err)
		}
	}
	for _, def := range defs {
		if _, err := s.conn.Exec(ctx, def); err != nil {
			return fmt.Errorf("%s: %s: %w", name, def, err)
		}
	}
	return nil
}

// writeBill writes the ALL bill of day, in the emulator's format
// (wxpay/wxpaysim bill.go): the payments of the day, then its refunds.
func (g seedGen) writeBill(day time.Time) (int, error) {
	if g.c.billDir == "" {
		return 0, errors.New("-bill-day needs -bill-dir")
	}
	if err := os.MkdirAll(g.c.billDir, 0o755); err != nil {
		return 0, err
	}
	from := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, tollgate.Beijing)
	to := from.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	cols := []string{"交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
		"交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额",
		"充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注"}
	yuan := func(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) }
	fee := func(fen int64) int64 { return (fen*6 + 500) / 1000 }
	var b bytes.Buffer
	b.WriteString("\ufeff" + strings.Join(cols, ",") + "\r\n")
	ls := g.lots()
	var rows int
	var settled, refunded, fees, ordered int64
	for i := range g.c.orders {
		at := g.orderAt(i)
		if in(at) {
			f := fee(seedFen)
			settled, fees, ordered, rows = settled+seedFen, fees+f, ordered+seedFen, rows+1
			r := []string{at.In(tollgate.Beijing).Format(time.DateTime), g.c.appID, g.c.mchID, "0", "", transactionID(i), outTradeNo(i),
				"oSeed", "NATIVE", "SUCCESS", "OTHERS", "CNY", yuan(seedFen), "0.00", "0", "0", "0.00", "0.00", "", "", "seed", "",
				yuan(f), "0.60%", yuan(seedFen), "0.00", ""}
			b.WriteString("`" + strings.Join(r, ",`") + "\r\n")
		}
		if ra := g.refundAt(i); ls[i].refunded > 0 && in(ra) {
			amt := ls[i].refundFen
			f := fee(amt)
			refunded, fees, rows = refunded+amt, fees-f, rows+1
			r := []string{ra.In(tollgate.Beijing).Format(time.DateTime), g.c.appID, g.c.mchID, "0", "", transactionID(i), outTradeNo(i),
				"oSeed", "NATIVE", "REFUND", "OTHERS", "CNY", "0.00", "0.00", "5000" + refundNo(i)[5:], refundNo(i), yuan(amt), "0.00",
				"ORIGINAL", "SUCCESS", "seed", "", "-" + yuan(f), "0.60%", "0.00", yuan(amt), ""}
			b.WriteString("`" + strings.Join(r, ",`") + "\r\n")
		}
	}
	feeStr := yuan(fees)
	if fees < 0 {
		feeStr = "-" + yuan(-fees)
	}
	b.WriteString("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n")
	b.WriteString("`" + strings.Join([]string{fmt.Sprint(rows), yuan(settled), yuan(refunded), "0.00", feeStr, yuan(ordered), yuan(refunded)}, ",`") + "\r\n")
	return rows, os.WriteFile(filepath.Join(g.c.billDir, day.Format("20060102")+".csv"), b.Bytes(), 0o644)
}

// runBillServe answers POST /pay/downloadbill with the bill file of the
// asked bill_date (gzipped when tar_type is GZIP), or error 20002 when there
// is none: enough of WeChat Pay API v2 for `tollgate reconcile`. It listens
// on loopback only and does not check signatures.
func runBillServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("tgload billserve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("mode", "billserve", "billserve")
	dir := fs.String("bill-dir", "", "directory of YYYYMMDD.csv bills (from -mode seedledger -bill-day)")
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("billserve: -addr must be a loopback address, got %q", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "billserve: listening on http://%s\n", ln.Addr())
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			BillDate string `xml:"bill_date"`
			TarType  string `xml:"tar_type"`
		}
		if err := xml.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		text, err := os.ReadFile(filepath.Join(*dir, filepath.Base(req.BillDate)+".csv"))
		if err != nil {
			fmt.Fprint(w, "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[No Bill Exist]]></return_msg><error_code><![CDATA[20002]]></error_code></xml>")
			return
		}
		if req.TarType == "GZIP" {
			zw := gzip.NewWriter(w)
			zw.Write(text)
			zw.Close()
			return
		}
		w.Write(text)
	})}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
