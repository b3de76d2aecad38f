package forward

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/sinewmesh/sinew/proxy/internal/sock"
)

// errNotRedirected means the connection reached us directly, not through a capture rule.
var errNotRedirected = errors.New("connection was not redirected (no original destination)")

// OriginalDst returns the address the client dialed before the capture rules redirected it to us.
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	if sc, ok := c.(*sock.Conn); ok {
		c = sc.TCPConn
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T is not a TCP connection", c)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		// SO_ORIGINAL_DST returns a sockaddr_in; the IPv6Mreq getter is the right size to receive it.
		if mreq, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST); err == nil {
			b := mreq.Multiaddr
			ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), uint16(b[2])<<8|uint16(b[3]))
			return
		}
		// IP6T_SO_ORIGINAL_DST (same number) returns a sockaddr_in6, which fits the IPv6MTUInfo getter.
		info, err := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, unix.SO_ORIGINAL_DST)
		if err != nil {
			serr = errNotRedirected
			return
		}
		p := (*[2]byte)(unsafePointer(&info.Addr.Port))
		ap = netip.AddrPortFrom(netip.AddrFrom16(info.Addr.Addr), uint16(p[0])<<8|uint16(p[1]))
	})
	if cerr != nil {
		return netip.AddrPort{}, cerr
	}
	if serr != nil {
		return netip.AddrPort{}, serr
	}
	if local, ok := c.LocalAddr().(*net.TCPAddr); ok && local.AddrPort() == ap {
		return netip.AddrPort{}, errNotRedirected
	}
	return ap, nil
}
