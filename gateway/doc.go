// Package gateway is tollgate's OpenAI-compatible proxy: it routes a public
// model name to ordered upstream deployments (OpenAI-compatible or
// Anthropic), fails over on connection errors, timeouts, 429 and 5xx with a
// per-deployment circuit breaker, relays SSE streams, and meters every call
// by reserving its worst-case cost through a Meter before going upstream and
// settling the real usage after.
//
// It is not the HTTP surface (authentication, request ids, metrics live in
// httpapi, which mounts Handler) and it knows nothing of the ledger or the
// price table: both reach it through the small Meter and Pricer interfaces.
package gateway
