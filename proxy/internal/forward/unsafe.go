package forward

import "unsafe"

// unsafePointer reads the network-order bytes of a port field in a raw sockaddr.
func unsafePointer(p *uint16) unsafe.Pointer { return unsafe.Pointer(p) }
