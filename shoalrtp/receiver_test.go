package shoalrtp

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func message(t *testing.T, sent time.Time, ssrc uint32, seq uint16) []byte {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: ssrc, SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: []byte{byte(seq)}}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint64(nil, uint64(sent.UnixNano())), b...)
}

// TestJitterBuffer: packets come out in RTP sequence order across the
// 16-bit wrap, not before their playout time; a packet missing when a
// later one is due is skipped and counted lost; one arriving after its
// place was given up is counted late and dropped; a new SSRC plays after
// the old one; RTCP passes through untouched, in its place in the stream
// (behind the RTP that came before it, not ahead of the jitter buffer).
func TestJitterBuffer(t *testing.T) {
	base := time.Unix(1000, 0)
	clock := base
	var rtcp [][]byte
	r := &Receiver{cfg: ReceiverConfig{Latency: 100 * time.Millisecond, Now: func() time.Time { return clock },
		OnRTCP: func(b []byte) { rtcp = append(rtcp, append([]byte(nil), b...)) }}, wake: make(chan struct{})}
	// Sent every 10 ms; 65535 arrives after 0 (reordered at the source),
	// 1 is lost, 3 arrives 30 ms late in transit (still in time).
	ms := func(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }
	r.add(message(t, ms(0), 7, 65534), ms(5))
	r.add(message(t, ms(20), 7, 0), ms(25))
	r.add(message(t, ms(10), 7, 65535), ms(26))
	r.add(message(t, ms(40), 7, 2), ms(45))
	r.add(message(t, ms(50), 7, 3), ms(85))
	sr := []byte{0x80, 200, 0, 6, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}
	r.add(append(binary.BigEndian.AppendUint64(nil, uint64(ms(55).UnixNano())), sr...), ms(60))

	// Nothing is due before 5 ms + 100 ms.
	clock = ms(100)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if p, err := r.ReadPacket(ctx); err == nil {
		t.Fatalf("packet %d released before its playout time", p.SequenceNumber)
	}
	cancel()
	clock = ms(200)
	var got []uint16
	for range 4 {
		p, err := r.ReadPacket(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.SequenceNumber)
	}
	if want := []uint16{65534, 65535, 0, 2}; !equal(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
	if len(rtcp) != 0 {
		t.Fatal("RTCP passed on ahead of the RTP packet sent before it")
	}
	// 1 arrives now: its place is gone.
	r.add(message(t, ms(30), 7, 1), ms(200))
	// The source restarts with a new SSRC and sequence numbers.
	r.add(message(t, ms(300), 9, 500), ms(305))
	r.add(message(t, ms(310), 9, 501), ms(315))
	bye := []byte{0x81, 203, 0, 1, 0, 0, 0, 9}
	r.add(append(binary.BigEndian.AppendUint64(nil, uint64(ms(320).UnixNano())), bye...), ms(325))
	r.mu.Lock()
	r.err = io.EOF
	r.mu.Unlock()
	clock = ms(1000)
	got = got[:0]
	var rtcpSeen []uint16 // RTCP packets passed on before each RTP packet
	for {
		p, err := r.ReadPacket(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.SequenceNumber)
		rtcpSeen = append(rtcpSeen, uint16(len(rtcp)))
	}
	if want := []uint16{3, 500, 501}; !equal(got, want) {
		t.Fatalf("then released %v, want %v", got, want)
	}
	if want := []uint16{0, 1, 1}; !equal(rtcpSeen, want) {
		t.Fatalf("RTCP packets passed on before 3, 500 and 501: %v, want %v", rtcpSeen, want)
	}
	st := r.Stats()
	if st.Received != 7 || st.Lost != 1 || st.Late != 1 || st.RTCP != 2 || len(rtcp) != 2 || string(rtcp[0]) != string(sr) || string(rtcp[1]) != string(bye) {
		t.Fatalf("stats %+v, rtcp %d", st, len(rtcp))
	}
	if st.AddedP99 < 30*time.Millisecond || st.AddedP50 > 5*time.Millisecond {
		t.Fatalf("added latency p50 %v p99 %v, want ~0 and ~35 ms", st.AddedP50, st.AddedP99)
	}
}

func equal(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestIsRTCP(t *testing.T) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, Marker: true}}
	b, _ := p.Marshal()
	if IsRTCP(b) {
		t.Fatal("RTP with the marker bit taken for RTCP")
	}
	if !IsRTCP([]byte{0x81, 201, 0, 1, 0, 0, 0, 1}) {
		t.Fatal("an RTCP receiver report not recognized")
	}
}
