// Package capture reads UDP datagrams out of packet capture files, classic
// pcap and pcapng alike, for Shoal's golden tests and the normdump tool. It
// wraps gopacket's pure-Go readers, so it needs no libpcap.
package capture

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Datagram is one UDP payload found in a capture.
type Datagram struct {
	Frame   int // 1-based frame number in the file, as Wireshark counts
	Time    time.Time
	Src     netip.AddrPort
	Dst     netip.AddrPort
	Payload []byte // valid only during the callback
}

// Stats counts what a capture held besides the datagrams handed out.
type Stats struct {
	Frames    int // all frames read
	UDP       int // UDP datagrams handed to the callback
	NonUDP    int // frames that are not UDP over IPv4/IPv6
	Fragments int // IP fragments (not reassembled)
}

// ErrFormat is returned for a file that is neither pcap nor pcapng.
var ErrFormat = errors.New("capture: not a pcap or pcapng file")

type packetReader interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// ReadUDP reads a pcap or pcapng stream and calls fn for every UDP datagram
// in it, in file order. It stops at the first error fn returns.
func ReadUDP(r io.Reader, fn func(Datagram) error) (Stats, error) {
	var st Stats
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return st, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	var (
		pr       packetReader
		linkType func(ci gopacket.CaptureInfo) layers.LinkType
	)
	switch {
	case magic[0] == 0x0a && magic[1] == 0x0d && magic[2] == 0x0d && magic[3] == 0x0a:
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return st, fmt.Errorf("capture: pcapng: %w", err)
		}
		pr = ng
		linkType = func(ci gopacket.CaptureInfo) layers.LinkType {
			if iface, err := ng.Interface(ci.InterfaceIndex); err == nil {
				return iface.LinkType
			}
			return ng.LinkType()
		}
	default:
		pc, err := pcapgo.NewReader(br)
		if err != nil {
			return st, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		pr = pc
		lt := pc.LinkType()
		linkType = func(gopacket.CaptureInfo) layers.LinkType { return lt }
	}
	for {
		data, ci, err := pr.ReadPacketData()
		if err == io.EOF {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("capture: frame %d: %w", st.Frames+1, err)
		}
		st.Frames++
		d, ok, frag := decodeUDP(data, linkType(ci))
		if frag {
			st.Fragments++
			continue
		}
		if !ok {
			st.NonUDP++
			continue
		}
		st.UDP++
		d.Frame = st.Frames
		d.Time = ci.Timestamp
		if err := fn(d); err != nil {
			return st, err
		}
	}
}

func decodeUDP(data []byte, lt layers.LinkType) (d Datagram, ok, fragment bool) {
	pkt := gopacket.NewPacket(data, lt, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	var src, dst netip.Addr
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
			return d, false, true
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	case *layers.IPv6:
		if pkt.Layer(layers.LayerTypeIPv6Fragment) != nil {
			return d, false, true
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	default:
		return d, false, false
	}
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp == nil {
		return d, false, false
	}
	d.Src = netip.AddrPortFrom(src, uint16(udp.SrcPort))
	d.Dst = netip.AddrPortFrom(dst, uint16(udp.DstPort))
	d.Payload = udp.Payload
	return d, true, false
}
