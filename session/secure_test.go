package session

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/secure"
)

// securePackets fills an outbox with packets as the engines build them.
func securePackets(t *testing.T, o *framing.Outbox) [][]byte {
	t.Helper()
	sf := framing.SenderFields{InstanceID: 5, GRTT: 10, Backoff: 4, GroupSize: 3}
	msgs := []framing.Message{
		{Type: framing.TypeData, Data: framing.Data{Header: framing.Header{Type: framing.TypeData, SourceID: 9}, SenderFields: sf,
			FECID: 5, ObjectID: 1, Payload: bytes.Repeat([]byte{1}, 1400)}},
		{Type: framing.TypeData, Data: framing.Data{Header: framing.Header{Type: framing.TypeData, SourceID: 9, Sequence: 1}, SenderFields: sf,
			FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Symbol: 1}, Payload: bytes.Repeat([]byte{2}, 1400)}},
		{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: framing.Header{Type: framing.TypeCmd, SourceID: 9, Sequence: 2}, SenderFields: sf,
			Flavor: framing.FlavorEOT}},
		{Type: framing.TypeNack, Nack: framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: 9, Sequence: 3}, ServerID: 1}},
	}
	var want [][]byte
	for i, m := range msgs {
		b, err := m.Append(o.Buf())
		if err != nil {
			t.Fatal(err)
		}
		dst := netip.AddrPort{}
		if i == 3 {
			dst = netip.MustParseAddrPort("10.0.0.1:6003")
		}
		o.Commit(b, dst)
		p, _ := o.Packet(o.Len() - 1)
		want = append(want, bytes.Clone(p))
	}
	return want
}

func testSession(t *testing.T, sec *secure.Config) *Session {
	s := &Session{cfg: Config{Security: sec}, log: slog.New(slog.DiscardHandler)}
	if err := s.initSecurity(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNoSecurityIsIdentity: without Config.Security the send path hands
// the engines' packets to the socket byte for byte (libnorm compatibility),
// and the receive path passes packets without EXT_AUTH through untouched
// but drops and counts those that carry one.
func TestNoSecurityIsIdentity(t *testing.T) {
	s := testSession(t, nil)
	want := securePackets(t, &s.out)
	buf := &s.out.Buf()[0]
	s.sealOut(time.Now())
	if s.out.Len() != len(want) || &s.out.Buf()[0] != buf {
		t.Fatal("outbox replaced without Security")
	}
	for i, w := range want {
		if b, _ := s.out.Packet(i); !bytes.Equal(b, w) {
			t.Fatalf("packet %d changed without Security", i)
		}
		in := bytes.Clone(w)
		if got := s.openIn(time.Now(), netip.AddrPort{}, in); !bytes.Equal(got, w) || &got[0] != &in[0] {
			t.Fatalf("packet %d changed on receipt without Security", i)
		}
	}

	// A packet sealed by a keyed session is dropped and counted.
	keyed := testSession(t, &secure.Config{Keys: secure.NewKeyring(secure.GroupKey{ID: 1})})
	securePackets(t, &keyed.out)
	keyed.sealOut(time.Now())
	b, _ := keyed.out.Packet(0)
	if got := s.openIn(time.Now(), netip.AddrPort{}, bytes.Clone(b)); got != nil {
		t.Fatal("keyless session accepted an authenticated packet")
	}
	if st := s.SecurityStats(); st.Malformed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSecuritySealsAndOpens: with keys, what sealOut sends, openIn turns
// back into the engines' packets (destinations kept); a session with
// another key refuses them all and counts them.
func TestSecuritySealsAndOpens(t *testing.T) {
	key := secure.GroupKey{ID: 3, Secret: [32]byte{1, 2, 3}}
	for _, enc := range []bool{false, true} {
		s := testSession(t, &secure.Config{Keys: secure.NewKeyring(key), Encrypt: enc})
		peer := testSession(t, &secure.Config{Keys: secure.NewKeyring(key)})
		wrong := testSession(t, &secure.Config{Keys: secure.NewKeyring(secure.GroupKey{ID: 3})})
		want := securePackets(t, &s.out)
		s.sealOut(time.Now())
		if s.out.Len() != len(want) {
			t.Fatalf("%d packets sealed of %d", s.out.Len(), len(want))
		}
		for i, w := range want {
			b, dst := s.out.Packet(i)
			if len(b) != len(w)+32 || (i == 3) != dst.IsValid() {
				t.Fatalf("packet %d: %d bytes (from %d), dst %v", i, len(b), len(w), dst)
			}
			if got := wrong.openIn(time.Now(), netip.AddrPort{}, bytes.Clone(b)); got != nil {
				t.Fatalf("packet %d opened with the wrong key", i)
			}
			if got := peer.openIn(time.Now(), netip.AddrPort{}, bytes.Clone(b)); !bytes.Equal(got, w) {
				t.Fatalf("packet %d: opened to % x", i, got)
			}
		}
		if st := wrong.SecurityStats(); st.BadTag != uint64(len(want)) {
			t.Fatalf("wrong key stats %+v", st)
		}
		if st := peer.SecurityStats(); st.Opened != uint64(len(want)) {
			t.Fatalf("peer stats %+v", st)
		}
	}
	// Signatures shrink the default segment so packets keep fitting the MTU.
	sk := secure.Config{Keys: secure.NewKeyring(key), SigningKey: make(ed25519.PrivateKey, 64)}
	if s := testSession(t, &sk); s.cfg.Sender.SegmentSize != 1400-(sk.Overhead()-32) {
		t.Fatalf("segment size %d with signatures", s.cfg.Sender.SegmentSize)
	}
}

// TestSecurityRejectedEvents: refused packets are published as
// SecurityRejected events with their source, claimed node and reason,
// rate-limited per source and in all, so that a flood from many addresses
// neither fills the event queue nor is lost: every refusal is in some
// event's Count, and in Stats().Security as in SecurityStats().
func TestSecurityRejectedEvents(t *testing.T) {
	key := secure.GroupKey{ID: 3, Secret: [32]byte{1, 2, 3}}
	tx := testSession(t, &secure.Config{Keys: secure.NewKeyring(secure.GroupKey{ID: 3, Secret: [32]byte{9}})}) // the wrong key
	securePackets(t, &tx.out)
	tx.sealOut(time.Now())
	forged, _ := tx.out.Packet(0)

	s := testSession(t, &secure.Config{Keys: secure.NewKeyring(key)})
	s.events = make(chan Event, 64)
	s.c = &fakeConn{}
	var err error
	if s.rx, err = receiver.New(receiver.Config{NodeID: 1}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	const n, sources = 10000, 300
	for i := range n {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i % sources / 256), byte(i % sources)}), 6003)
		if s.openIn(now.Add(time.Duration(i)*time.Microsecond), from, bytes.Clone(forged)) != nil {
			t.Fatal("forgery accepted")
		}
	}
	// A second later the first source is reported again, with what it sent
	// in between.
	later := now.Add(1100 * time.Millisecond)
	first := netip.MustParseAddrPort("10.0.0.0:6003")
	s.openIn(later, first, bytes.Clone(forged))
	var evs []SecurityRejected
	for len(s.events) > 0 {
		if e, ok := (<-s.events).(SecurityRejected); ok {
			evs = append(evs, e)
		}
	}
	if len(evs) == 0 || len(evs) > 2*maxSecEvents {
		t.Fatalf("%d events for %d refusals (limit %d a second)", len(evs), n+1, maxSecEvents)
	}
	e := evs[0]
	if !errors.Is(e.Reason, secure.ErrTag) || e.Node != 9 || !e.From.IsValid() || e.Count != 1 {
		t.Fatalf("first event %+v", e)
	}
	last := evs[len(evs)-1]
	if last.From != first || last.Count != n/sources+1 {
		t.Fatalf("last event %+v, want %v with %d refusals", last, first, n/sources+1)
	}
	st := s.Stats()
	if st.EventsDropped != 0 || st.Security.BadTag != n+1 || st.Security != s.SecurityStats() {
		t.Fatalf("stats: dropped %d, security %+v, SecurityStats %+v", st.EventsDropped, st.Security, s.SecurityStats())
	}
}

// TestSecurityPacedOnTheWire: the sender's pacer counts the bytes EXT_AUTH
// adds to each packet, so the configured rate is the rate of sealed
// packets on the wire (with a batch signature, the most overhead there
// is), not the rate before sealing.
func TestSecurityPacedOnTheWire(t *testing.T) {
	const rate = 1e6
	for _, c := range []secure.Config{
		{Keys: secure.NewKeyring(secure.GroupKey{ID: 1})},
		{Keys: secure.NewKeyring(secure.GroupKey{ID: 1}), Encrypt: true, SigningKey: ed25519.NewKeyFromSeed(make([]byte, 32))},
	} {
		s := testSession(t, &c)
		s.node = 5
		s.cfg.Sender.Rate = rate
		tx, err := s.txLocked()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.SendData(make([]byte, 5<<20), nil); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		wire, plain := 0, 0
		for now := start; now.Before(start.Add(2 * time.Second)); {
			s.out.Reset()
			next := tx.Poll(now, &s.out)
			for i := range s.out.Len() {
				b, _ := s.out.Packet(i)
				plain += len(b)
			}
			s.sealOut(now)
			for i := range s.out.Len() {
				b, _ := s.out.Packet(i)
				wire += len(b)
			}
			now = next
		}
		if wire > 2*rate+16*1500 || wire < 1.9*rate {
			t.Fatalf("overhead %d: %d bytes on the wire (%d before sealing) in 2 s at %v B/s", c.Overhead(), wire, plain, rate)
		}
	}
}
