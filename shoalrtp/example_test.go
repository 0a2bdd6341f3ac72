package shoalrtp_test

import (
	"context"
	"log"
	"net/netip"
	"time"

	"github.com/pion/rtp"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
	"github.com/shoalnet/shoal/shoalrtp"
)

// A media sender: RTP packets go out as messages of a stream whose repair
// is bounded by the receivers' 200 ms playout latency, with proactive FEC
// (5 parity packets to 16) in blocks that close every 25 ms, and NACKs
// sent at once (Backoff -1: no back-off), so that a repair still fits in
// the budget: 99 % on time at 10 % loss and a 50 ms round trip.
func ExampleSender() {
	ctx := context.Background()
	s, err := session.New(session.Config{
		Group:  netip.MustParseAddrPort("239.255.10.1:5004"),
		Sender: sender.Config{Rate: 1e6, BlockLen: 16, Parity: 5, AutoParity: 5, Backoff: -1},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Shutdown(ctx)
	st, err := s.OpenStream(ctx, session.StreamOptions{MaxAge: 200 * time.Millisecond, BlockTime: 25 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	tx := shoalrtp.NewSender(st)
	for seq := range uint16(100) {
		p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: 1}, Payload: []byte("frame")}
		if err := tx.WritePacket(ctx, p); err != nil {
			log.Fatal(err)
		}
		time.Sleep(33 * time.Millisecond)
	}
	_ = tx.Close()
}

// A media receiver: packets come back in RTP order, 200 ms after they
// would have arrived over the fastest path; what is still missing then is
// skipped.
func ExampleReceiver() {
	ctx := context.Background()
	s, err := session.New(session.Config{Group: netip.MustParseAddrPort("239.255.10.1:5004")})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Shutdown(ctx)
	o, err := s.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	rx := shoalrtp.NewReceiver(o, shoalrtp.ReceiverConfig{Latency: 200 * time.Millisecond, Session: s})
	for {
		p, err := rx.ReadPacket(ctx)
		if err != nil {
			break // io.EOF: the sender closed the stream
		}
		_ = p // hand p to the decoder
	}
	st := rx.Stats()
	log.Printf("received %d, lost %d, late %d, added latency p99 %v", st.Received, st.Lost, st.Late, st.AddedP99)
}
