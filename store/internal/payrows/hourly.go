package payrows

import (
	"fmt"
	"time"

	"tollgate/payment"
)

// HourlyOrders is payment.HourlyReporter's query, the same on both
// stores: one pass over the payment_orders_created index range [from,
// to), grouped by hour since from. Its arguments are Micros(from) and
// Micros(to), in that order.
func HourlyOrders(ph func(int) string) string {
	return fmt.Sprintf(`SELECT (created_at - %[1]s) / 3600000000 AS h, count(*),
		count(*) FILTER (WHERE status IN ('SUCCESS', 'REFUND')),
		count(*) FILTER (WHERE status IN ('CLOSED', 'PAYERROR')),
		count(*) FILTER (WHERE status = 'CLOSED' AND code_url = '' AND h5_url = '' AND prepay_id = '')
		FROM payment_orders WHERE created_at >= %[1]s AND created_at < %[2]s
		GROUP BY h ORDER BY h`, ph(1), ph(2))
}

// ScanHour reads one row of HourlyOrders, numbering its hour from from.
func ScanHour(sc interface{ Scan(...any) error }, from time.Time) (payment.OrderHour, error) {
	var h int64
	var o payment.OrderHour
	if err := sc.Scan(&h, &o.Placed, &o.Paid, &o.Failed, &o.Refused); err != nil {
		return o, err
	}
	o.Hour = from.UTC().Add(time.Duration(h) * time.Hour)
	return o, nil
}
