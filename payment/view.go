package payment

import (
	"encoding/json"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/webhook"
	"tollgate/wxpay"
)

// OrderView is an order as GET /v1/payments/orders/{out_trade_no} shows
// it, and the data of the payment.succeeded and payment.closed webhook
// events (docs/DESIGN.md §4.11): one type, so the API and the events
// cannot drift apart.
type OrderView struct {
	OutTradeNo string           `json:"out_trade_no"`
	Status     Status           `json:"status"`
	AmountFen  tollgate.Fen     `json:"amount_fen"`
	Credits    tollgate.Credits `json:"credits"`
	PackageID  string           `json:"package_id,omitempty"`
	Method     string           `json:"method"`
	CodeURL    string           `json:"code_url,omitempty"`
	H5URL      string           `json:"h5_url,omitempty"`
	// JSAPI is the pay sheet while a jsapi order is payable (signed at
	// most once a minute per order: Service.JSAPIParams); the API sets
	// it, events never carry it.
	JSAPI         *wxpay.V3JSAPIParams `json:"jsapi,omitempty"`
	TransactionID string               `json:"transaction_id,omitempty"`
	ExpiresAt     time.Time            `json:"expires_at"`
	CreatedAt     time.Time            `json:"created_at"`
	// Metadata is the app's object from the checkout session the order
	// was made from (issue 20 point 5), echoed as given; {} for none.
	Metadata json.RawMessage `json:"metadata"`
}

// View returns o in the API's shape.
func (o Order) View() OrderView {
	return OrderView{OutTradeNo: o.OutTradeNo, Status: o.Status, AmountFen: o.Fen, Credits: o.Credits,
		PackageID: o.PackageID, Method: o.PayMethod(), CodeURL: o.CodeURL, H5URL: o.H5URL, TransactionID: o.TransactionID,
		ExpiresAt: o.ExpiresAt, CreatedAt: o.CreatedAt, Metadata: orderMetadata(o)}
}

// orderMetadata is the order's metadata as the API and the events show
// it: the one place that reads it for both ({} for none).
func orderMetadata(o Order) json.RawMessage { return o.MetadataOrEmpty() }

// eventData marshals the view of o for an event.
func eventData(o Order) (json.RawMessage, error) {
	b, err := json.Marshal(o.View())
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EINTERNAL, "order %s as event data: %v", o.OutTradeNo, err)
	}
	return b, nil
}

// ClosedEvent returns the payment.closed event of an order change from
// before to after, and whether there is one: the order has just become
// CLOSED or PAYERROR (it will not be paid, short of a late payment, which
// is then payment.succeeded). The payment stores write it in the
// transaction of UpdateOrder that makes the change, so the event and the
// order's status commit together; its time is the order's UpdatedAt.
func ClosedEvent(before, after Order) (webhook.Event, bool, error) {
	if before.Status == after.Status || (after.Status != StatusClosed && after.Status != StatusPayError) {
		return webhook.Event{}, false, nil
	}
	data, err := eventData(after)
	if err != nil {
		return webhook.Event{}, false, err
	}
	at := after.UpdatedAt
	if at.IsZero() {
		at = after.CreatedAt
	}
	e, err := webhook.NewEvent(webhook.PaymentClosed, after.Account, at, data)
	return e, err == nil, err
}

// View returns r as the admin API shows it (ledger.RefundView, also the
// data of the refund.succeeded and refund.failed events).
func (r RefundRecord) View() ledger.RefundView {
	return ledger.RefundView{OutRefundNo: r.OutRefundNo, OutTradeNo: r.OutTradeNo, Account: r.Account, RefundFen: r.Fen,
		Credits: r.Credits, AskedFen: r.AskedFen, Status: ledger.RefundStatus(r.Status), RequestedBy: r.RequestedBy,
		Reason: r.Reason, Actor: r.Actor, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}
