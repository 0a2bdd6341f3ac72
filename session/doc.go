// Package session is the part of Shoal most programs import: a NORM (RFC
// 5740) reliable multicast session on real UDP sockets. It owns the socket,
// joins the group, and drives the sender and receiver engines from one
// goroutine per session; it exposes what the engines do as Go calls (send
// bytes, a file or a stream; accept what others send), typed events and a
// statistics snapshot.
//
// A session both sends and receives on one group and port:
//
//	s, err := session.New(session.Config{Group: netip.MustParseAddrPort("239.255.1.1:6003")})
//	...
//	id, err := s.SendBytes(ctx, data, []byte("greeting"))   // to every receiver
//	obj, err := s.Accept(ctx)                               // from any sender
//	err = obj.Wait(ctx)                                     // until it is whole
//
// Everything the session sends is paced at Config.Sender.Rate, or, with
// Config.Sender.CC set, at the rate NORM congestion control finds. Shutdown
// flushes: it returns once every receiver had its chance to repair, or at
// the context's deadline; Close is Shutdown bounded by Config.Linger. Done
// and Err tell when and why a session stopped.
//
// # Streams and lost data
//
// A received stream is an io.ReadCloser. Where data was lost for good
// (the sender gave up on a receiver, or it joined late), Read returns a
// *GapError in its place and then carries on after the gap, so io.Copy
// stops there; call Object.SetSkipGaps to read past gaps instead (they are
// still published as StreamGap events). Objects and streams take read and
// write deadlines as net.Conn does.
//
// # Observing a session
//
// Stats returns counters (PublishExpvar publishes them in expvar), Events
// a channel of typed events, and Config.Tracer calls back on packets,
// NACKs, repairs and GRTT and rate changes. FileSink and the files under
// Config.Dir are written on a goroutine of their own, never under the
// session's lock, so a slow disk holds back only the files.
//
// # Scopes
//
// The TTL (Config.TTL, default 1) bounds how far multicast travels: 0 stays
// on the host, 1 on the local subnet (the default: nothing leaves the LAN),
// 32 the site, 64 the region, 128 the continent, 255 is unrestricted. IPv6
// encodes the scope in the group address instead: ff02:: link-local, ff05::
// site-local, ff08:: organization-local, ff0e:: global; the hop limit still
// applies. Administratively scoped IPv4 groups (239.0.0.0/8) are meant for
// private use, which is why Shoal's examples use 239.255.x.x.
//
// # Packet I/O and testing
//
// A session reads and writes datagrams through a PacketConn: by default the
// UDP socket Listen opens (recvmmsg with kernel receive timestamps, sendmmsg
// and, on Linux, segmentation offload), or whatever Config.Conn supplies.
// Package sessiontest supplies an in-memory multicast network with delay,
// jitter, loss and rate limits, on which whole sessions run in one process
// without privileges, in virtual time under testing/synctest. NewLossConn
// wraps a connection to drop a seeded share of the packets, for tests and
// benchmarks on real networks.
package session
