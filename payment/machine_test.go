package payment

import (
	"context"
	"testing"

	"tollgate"
)

// plainStore is a Store that writes whatever fn leaves, as the SQL stores
// now do: the state machine is not its business.
type plainStore struct {
	Store
	o Order
	r RefundRecord
}

func (p *plainStore) UpdateOrder(_ context.Context, _ string, fn func(*Order) error) (Order, error) {
	o := p.o
	if err := fn(&o); err != nil {
		return Order{}, err
	}
	p.o = o
	return o, nil
}

func (p *plainStore) UpdateRefund(_ context.Context, _ string, fn func(*RefundRecord) error) (RefundRecord, error) {
	r := p.r
	if err := fn(&r); err != nil {
		return RefundRecord{}, err
	}
	p.r = r
	return r, nil
}

// TestServiceStoreAppliesStateMachine: the store the Service writes through
// refuses, with nothing written, what the state machines forbid, over a
// store that knows no rule.
func TestServiceStoreAppliesStateMachine(t *testing.T) {
	ctx := context.Background()
	plain := &plainStore{o: Order{Status: StatusSuccess}, r: RefundRecord{Status: RefundSucceeded}}
	var st Store = machineStore{plain, nil}
	_, err := st.UpdateOrder(ctx, "o", func(o *Order) error { o.Status, o.Review = StatusClosed, "x"; return nil })
	if tollgate.ErrorCode(err) != tollgate.ECONFLICT || plain.o.Status != StatusSuccess || plain.o.Review != "" {
		t.Fatalf("SUCCESS -> CLOSED: %v, stored %+v", err, plain.o)
	}
	if o, err := st.UpdateOrder(ctx, "o", func(o *Order) error { o.Status = StatusRefund; return nil }); err != nil || o.Status != StatusRefund {
		t.Fatalf("SUCCESS -> REFUND: %+v, %v", o, err)
	}
	_, err = st.UpdateRefund(ctx, "r", func(r *RefundRecord) error { r.Status = RefundFailed; return nil })
	if tollgate.ErrorCode(err) != tollgate.ECONFLICT || plain.r.Status != RefundSucceeded {
		t.Fatalf("succeeded -> failed: %v, stored %+v", err, plain.r)
	}
}
