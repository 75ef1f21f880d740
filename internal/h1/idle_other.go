//go:build !unix

package h1

import "net"

// readable cannot peek here: a stray answer on an idle connection is
// found only when the next request reads it.
func readable(net.Conn) bool { return false }
