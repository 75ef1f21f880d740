// Package metering adapts the gateway to the money and rate parts of
// tollgate: Meter is the gateway.Meter over the ledger (holds, settles and
// usage records), Pricer the gateway.Pricer over the price table, and
// KeyAdmitter the gateway.Admitter over kv's limiter with serve's default
// request rate. It holds no rule of its own: the limits are
// tollgate.KeyLimits enforced by gateway.Limits, the money rules the
// ledger's. It imports tollgate, gateway, ledger and pricing, and is
// imported only by the wiring (cmd/tollgate).
package metering
