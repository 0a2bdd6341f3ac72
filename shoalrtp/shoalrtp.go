// Package shoalrtp carries RTP media over Shoal: each RTP packet (or RTCP
// packet, passed through untouched) is one message of a deadline-bounded
// message-mode stream, and the receiving side hands the packets back in
// RTP sequence order through a jitter buffer with a fixed playout latency,
// skipping what is still missing at its deadline.
//
// Shoal's NACK repair and FEC replace RTCP feedback on the multicast hop;
// set the stream's budget (session.StreamOptions.MaxAge, BlockTime and
// sender.Config.AutoParity) to fit the playout latency. With a 200 ms
// latency, 5 parity packets to a block of 16 and no NACK back-off
// (sender.Config.Backoff -1) keep 99.5 % of the packets on time at 10 %
// loss and a 50 ms round trip (go run ./bench rtp).
//
// On the wire (inside the Shoal stream) each message is an 8-byte
// big-endian send time, in nanoseconds since the Unix epoch on the
// sender's clock, followed by the RTP or RTCP packet as it was given. The
// receiver uses the send times only relative to each other (the clocks
// need not agree): a packet's playout time is its send time, plus the
// smallest transit seen, plus the latency.
package shoalrtp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/pion/rtp"
	"github.com/shoalnet/shoal/session"
)

// headerLen is the send-time header before each packet.
const headerLen = 8

// ErrNotRTP is returned by Sender.WriteRTP for bytes that are neither an
// RTP packet nor RTCP.
var ErrNotRTP = errors.New("shoalrtp: not an RTP or RTCP packet")

// IsRTCP reports whether b looks like RTCP rather than RTP (RFC 5761
// demultiplexing: RTCP packet types 192-223 where RTP has its marker and
// payload type).
func IsRTCP(b []byte) bool {
	return len(b) >= 8 && b[0]>>6 == 2 && b[1] >= 192 && b[1] <= 223
}

// Sender sends RTP packets over a Shoal stream, one message each.
type Sender struct {
	st  *session.Stream
	now func() time.Time
	buf []byte

	// Counts, for statistics; not safe for concurrent writers.
	Packets, RTCP uint64
}

// NewSender sends over st, a stream opened for media: typically with
// StreamOptions.MaxAge set to the receivers' playout latency.
func NewSender(st *session.Stream) *Sender {
	return &Sender{st: st, now: time.Now}
}

// WritePacket sends p as one message.
func (s *Sender) WritePacket(ctx context.Context, p *rtp.Packet) error {
	b, err := p.Marshal()
	if err != nil {
		return fmt.Errorf("shoalrtp: %w", err)
	}
	s.Packets++
	return s.write(ctx, b)
}

// WriteRTP sends a raw RTP packet, checked with pion/rtp, or an RTCP
// packet, passed through untouched.
func (s *Sender) WriteRTP(ctx context.Context, b []byte) error {
	if IsRTCP(b) {
		s.RTCP++
		return s.write(ctx, b)
	}
	var p rtp.Header
	if _, err := p.Unmarshal(b); err != nil {
		return fmt.Errorf("%w: %v", ErrNotRTP, err)
	}
	s.Packets++
	return s.write(ctx, b)
}

func (s *Sender) write(ctx context.Context, b []byte) error {
	s.buf = binary.BigEndian.AppendUint64(s.buf[:0], uint64(s.now().UnixNano()))
	s.buf = append(s.buf, b...)
	return s.st.WriteMessage(ctx, s.buf)
}

// Close ends the stream.
func (s *Sender) Close() error { return s.st.Close() }
