//go:build tollgate_mutants

package payment

import (
	"context"

	"tollgate/internal/failpoint"
	"tollgate/ledger"
	"tollgate/wxpay"
)

// The deliberate bugs (internal/failpoint's mutants) the reliability harness
// plants to prove it catches them, switched on by TOLLGATE_MUTANTS. This file
// is compiled only with the tollgate_mutants tag; without it the switches are
// constants false (mutant_off.go).
var (
	mutantSkipAmount    = failpoint.Mutant(failpoint.MutantSkipAmount)
	mutantSkipSignature = failpoint.Mutant(failpoint.MutantSkipSignature)
	mutantSplitCredit   = failpoint.Mutant(failpoint.MutantSplitCredit)
	// mutantLateTokenExpiry accepts a provisional token at its expiry.
	mutantLateTokenExpiry = failpoint.Mutant(failpoint.MutantLateTokenExpiry)
	// mutantSkipCloseRevoke closes an order without revoking its grant.
	mutantSkipCloseRevoke = failpoint.Mutant(failpoint.MutantSkipCloseRevoke)
	// mutantRefundUnpaid starts a refund of an order that is not paid.
	mutantRefundUnpaid = failpoint.Mutant(failpoint.MutantRefundUnpaid)
)

// splitCredit is the deliberate bug MutantSplitCredit: the order status is
// updated in one transaction and is the guard, the lot is inserted in
// another. A crash between them (the harness arms
// after_credit_before_order, which fires there) leaves a SUCCESS order
// without a lot, and every repeat is then acknowledged without a credit.
func splitCredit(ctx context.Context, s *Service, o Order, p ledger.Payment) (bool, error) {
	already := false
	_, err := s.store.UpdateOrder(ctx, o.OutTradeNo, func(x *Order) error {
		if x.Status.Paid() {
			already = true
			return nil
		}
		x.Status, x.TransactionID, x.UpdatedAt = StatusSuccess, p.TransactionID, s.now().UTC()
		x.LeaseOwner, x.LeaseUntil = "", zeroTime
		return nil
	})
	if err != nil || already {
		return already, err
	}
	_ = failpoint.Inject(failpoint.AfterCreditBeforeOrder)
	_, _, err = s.ledger.CreditPayment(ctx, p)
	return false, err
}

// resignV2 signs m again with our own key: the mutant MutantSkipSignature,
// which skips the signature check.
func resignV2(m map[string]string, key, signType string) []byte {
	if signType == "" {
		signType = wxpay.SignTypeMD5
	}
	sig, err := wxpay.SignV2(m, signType, key)
	if err != nil {
		return nil
	}
	m["sign"] = sig
	return wxpay.EncodeV2XML(m)
}
