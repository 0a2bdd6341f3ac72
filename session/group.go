package session

import (
	"errors"
	"fmt"
	"net/netip"
)

// Errors about the group address.
var (
	ErrNotMulticast = errors.New("session: group is not a multicast address")
	// ErrReservedGroup: 224.0.0.0/24 and ff02::/16 link-local control
	// groups carry routing protocols; sending NORM there disturbs them.
	// Set Config.AllowReserved to use one anyway.
	ErrReservedGroup = errors.New("session: group is in a reserved link-local control range")
)

var reserved4 = netip.MustParsePrefix("224.0.0.0/24")

// checkGroup validates a group address.
func checkGroup(g netip.AddrPort, allowReserved bool) error {
	a := g.Addr().Unmap()
	if !a.IsMulticast() {
		return fmt.Errorf("%w: %v", ErrNotMulticast, a)
	}
	if g.Port() == 0 {
		return fmt.Errorf("session: group %v has no port", g)
	}
	if !allowReserved && (reserved4.Contains(a) || (a.Is6() && a.IsLinkLocalMulticast() && isControl6(a))) {
		return fmt.Errorf("%w: %v", ErrReservedGroup, a)
	}
	return nil
}

// isControl6 reports the well-known link-local control groups: ff02::1 to
// ff02::ff (all nodes, all routers, routing protocols, MLDv2, mDNS...),
// ff02::1:2 and ff02::1:3 (DHCP, LLMNR) and the solicited-node groups
// ff02::1:ffxx:xxxx used by neighbour discovery.
func isControl6(a netip.Addr) bool {
	b := a.As16()
	for _, x := range b[2:11] {
		if x != 0 {
			return false
		}
	}
	switch {
	case b[11] == 0 && b[12] == 0 && b[13] == 0 && b[14] == 0:
		return true // ff02::xx
	case b[11] == 1 && b[12] == 0xff:
		return true // solicited-node
	case b[11] == 0 && b[12] == 0 && b[13] == 1 && b[14] == 0 && (b[15] == 2 || b[15] == 3):
		return true
	}
	return false
}

// macCollision reports whether two IPv4 groups map to the same Ethernet
// multicast MAC address (RFC 1112 §6.4 keeps only the low 23 bits), so
// that switches and NICs cannot tell them apart and receivers of one get
// the other's traffic to filter in software.
func macCollision(a, b netip.Addr) bool {
	if !a.Is4() || !b.Is4() || a == b {
		return false
	}
	x, y := a.As4(), b.As4()
	return x[1]&0x7f == y[1]&0x7f && x[2] == y[2] && x[3] == y[3]
}

// MACCollisions returns the pairs among groups that share an Ethernet
// multicast MAC address; a program joining several groups on one interface
// should avoid them.
func MACCollisions(groups []netip.Addr) [][2]netip.Addr {
	var out [][2]netip.Addr
	for i := range groups {
		for j := i + 1; j < len(groups); j++ {
			if macCollision(groups[i], groups[j]) {
				out = append(out, [2]netip.Addr{groups[i], groups[j]})
			}
		}
	}
	return out
}
