// Package reliability is tollgate's fault-injection harness: it runs the
// real binary (one WeChat Pay emulator with faults on, several `tollgate
// serve` instances over one PostgreSQL and one Redis, a front door that can
// deliver a notification to every instance at once), drives seeded users
// through it, kills instances, forges notifications, and then checks the
// ledger against the emulator's ground truth (docs/DESIGN.md §6, I1–I13).
// It runs API v2 against the emulator's merchant key (TestHarness), or the
// production path (TestProductionHarness): API v3 with an operator's
// generated keys, `serve --mode production` behind an https front door,
// and a platform certificate rotation mid-run.
//
// It is test infrastructure, not part of the service: nothing in tollgate
// imports it. The short form runs under `go test ./reliability/...`; see
// docs/RELIABILITY.md for what it covers and what remains.
package reliability
