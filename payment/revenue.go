package payment

import (
	"context"
	"time"

	"tollgate"
	"tollgate/ledger"
)

// Revenue sums the payments credited in a period, for the revenue report.
type Revenue struct {
	From, To time.Time
	Payments int
	// GrossFen is what payers paid; FeeFen the merchant fees recorded on
	// the orders (pricing.Fee on the month's volume before each payment);
	// RefundedFen what was refunded of those payments so far; NetFen is
	// Gross − Fee − Refunded.
	GrossFen    tollgate.Fen
	FeeFen      tollgate.Fen
	RefundedFen tollgate.Fen
	NetFen      tollgate.Fen
}

// Revenue reports the payments credited (lots created) in [from, to). It
// reads every lot in one snapshot, so it is for reports, not the request
// path.
func (s *Service) Revenue(ctx context.Context, from, to time.Time) (Revenue, error) {
	const op = "payment.Revenue"
	var d *ledger.Dump
	if err := s.ledger.View(ctx, func(tx ledger.ReadTx) (err error) {
		d, err = tx.Dump(ctx)
		return err
	}); err != nil {
		return Revenue{}, wrap(op, tollgate.EINTERNAL, err)
	}
	r := Revenue{From: from, To: to}
	for _, l := range d.Lots {
		if l.CreatedAt.Before(from) || !l.CreatedAt.Before(to) {
			continue
		}
		r.Payments++
		r.GrossFen += l.Fen
		r.RefundedFen += l.RefundedFen
		o, err := s.store.Order(ctx, l.OutTradeNo)
		if err != nil {
			return Revenue{}, wrap(op, tollgate.EINTERNAL, err)
		}
		r.FeeFen += o.FeeFen
	}
	r.NetFen = r.GrossFen - r.FeeFen - r.RefundedFen
	return r, nil
}
