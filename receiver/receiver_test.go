package receiver

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

const (
	senderID = 0x0a000001
	myID     = 0x0b000001
)

var (
	t0   = time.Unix(1000, 0)
	from = netip.MustParseAddrPort("10.0.0.1:5000")
)

// pkt builds sender messages by hand, so each test says exactly what
// arrives.
type pkt struct {
	seq  uint16
	inst uint16
}

func (p *pkt) fields() framing.SenderFields {
	return framing.SenderFields{InstanceID: p.inst, GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: framing.QuantizeGroupSize(10)}
}

func (p *pkt) hdr(t framing.Type) framing.Header {
	p.seq++
	return framing.Header{Type: t, Sequence: p.seq, SourceID: senderID}
}

// data returns NORM_DATA for symbol sym of block blk of a data object of
// size bytes in segments of 100 bytes, blocks of 4, 2 parity.
func (p *pkt) data(t *testing.T, obj uint16, size uint64, blk uint32, sym uint16, payload []byte) []byte {
	t.Helper()
	ext, err := framing.AppendFTI(nil, framing.FECRS8, framing.FTI{TransferLength: size, SymbolLength: 100, MaxBlockLen: 4, Parity: 2})
	if err != nil {
		t.Fatal(err)
	}
	m := framing.Data{Header: p.hdr(framing.TypeData), SenderFields: p.fields(), FECID: framing.FECRS8, ObjectID: obj,
		PayloadID: framing.PayloadID{Block: blk, Symbol: sym}, Ext: ext, Payload: payload}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *pkt) cmd(t *testing.T, c framing.Cmd) []byte {
	t.Helper()
	c.Header, c.SenderFields = p.hdr(framing.TypeCmd), p.fields()
	b, err := c.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRx(t *testing.T, cfg Config) *Receiver {
	t.Helper()
	if cfg.NodeID == 0 {
		cfg.NodeID = myID
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func handle(t *testing.T, r *Receiver, now time.Time, b []byte) {
	t.Helper()
	if err := r.HandlePacket(now, from, b); err != nil {
		t.Fatal(err)
	}
}

// poll runs the receiver until until and returns every message it sent.
func poll(r *Receiver, now, until time.Time) []framing.Message {
	var out framing.Outbox
	var msgs []framing.Message
	for !now.After(until) {
		out.Reset()
		next := r.Poll(now, &out)
		for i := range out.Len() {
			b, _ := out.Packet(i)
			var m framing.Message
			if m.Unmarshal(append([]byte(nil), b...)) == nil {
				msgs = append(msgs, m)
			}
		}
		if !next.After(now) {
			next = now.Add(time.Microsecond)
		}
		now = next
	}
	return msgs
}

func TestFlushWatermarkAck(t *testing.T) {
	r := newRx(t, Config{})
	p := &pkt{inst: 7}
	payload := []byte("hello")
	handle(t, r, t0, p.data(t, 3, 5, 0, 0, payload))
	var done bool
	for _, e := range r.Events() {
		if e.Kind == EventCompleted && string(e.Data) == "hello" {
			done = true
		}
	}
	if !done {
		t.Fatal("one-segment object not completed")
	}
	flush := framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: 3},
		Content: framing.AppendNodeID(framing.AppendNodeID(nil, 42), myID)}
	handle(t, r, t0.Add(time.Millisecond), p.cmd(t, flush))
	msgs := poll(r, t0.Add(time.Millisecond), t0.Add(100*time.Millisecond))
	var acks int
	for _, m := range msgs {
		if m.Type == framing.TypeAck && m.Ack.AckType == framing.AckFlush {
			w, err := m.Ack.Watermark(0)
			if err != nil || w != flush.Ref || m.Ack.ServerID != senderID || m.Ack.InstanceID != 7 {
				t.Fatalf("bad ACK(FLUSH): %+v %v", m.Ack, err)
			}
			acks++
		}
	}
	if acks != 1 {
		t.Fatalf("%d ACK(FLUSH) sent, want 1 (messages %v)", acks, msgs)
	}
	_ = errors.New
}
