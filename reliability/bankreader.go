package reliability

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"tollgate/ledger"
)

// BankReader is S14: while the run goes on, it reads the ledger in one
// snapshot after another and checks conservation in each: per lot and
// over all lots, granted = used + left + refunding + refunded (I3, I4).
// A snapshot that mixes two transactions' writes would break it.
type BankReader struct {
	Read func(ctx context.Context) (*ledger.Dump, error)

	Reads, Errors atomic.Int64

	mu         sync.Mutex
	violations []string
}

// Run reads until done is closed or ctx ends.
func (b *BankReader) Run(ctx context.Context, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		default:
		}
		d, err := b.Read(ctx)
		if err != nil {
			// Connection cuts (S7) and kills make reads fail now and then.
			b.Errors.Add(1)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		b.Reads.Add(1)
		b.check(d)
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *BankReader) check(d *ledger.Dump) {
	var granted, parts int64
	for _, l := range d.Lots {
		p := int64(l.Used + l.Left + l.Refunding + l.Refunded)
		if int64(l.Granted) != p {
			b.violation("I3: lot %d: granted %d ≠ used + left + refunding + refunded %d", l.ID, l.Granted, p)
		}
		granted += int64(l.Granted)
		parts += p
	}
	if granted != parts {
		b.violation("I4: snapshot with %d lots: Σ granted %d ≠ Σ used + left + refunding + refunded %d", len(d.Lots), granted, parts)
	}
}

func (b *BankReader) violation(f string, a ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.violations) < 20 {
		b.violations = append(b.violations, fmt.Sprintf(f, a...))
	}
}

// Violations returns what the reads found wrong.
func (b *BankReader) Violations() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.violations...)
}
