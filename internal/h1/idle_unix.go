//go:build unix

package h1

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// readable reports whether an idle connection has something to read, or
// is closed: an answer nobody asked for (which the next request would
// take for its own) or the server's close. Either way it must not carry
// another request. It peeks without blocking: one system call.
func readable(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var pending bool
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		pending = n > 0 || err == nil || (err != unix.EAGAIN && err != unix.EINTR)
		return true
	})
	return pending || err != nil
}
