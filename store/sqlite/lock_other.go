//go:build !unix

package sqlite

import "tollgate"

// LockWriter is not available on this platform: it returns EUNAVAILABLE,
// and serve keeps holds in the store.
func LockWriter(path string) (unlock func() error, err error) {
	return nil, tollgate.Errorf(tollgate.EUNAVAILABLE, "no file locks on this platform")
}
