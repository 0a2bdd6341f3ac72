package secure_test

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/secure"
	"github.com/shoalnet/shoal/sender"
)

// attackResult is what one run of the spoofing scenario produced.
type attackResult struct {
	data         []byte // what the receiver delivered for the object, nil if nothing
	names        [][]byte
	forgedAcked  bool // the sender took node 3 (which never ran) as acknowledging
	grtt         time.Duration
	injectedRx   uint64
	injectedTx   uint64
	rxOpen       secure.Stats
	txOpen       secure.Stats
	aborted, eot bool
}

// runAttack runs a sender engine (node 1) and a receiver engine (node 2)
// through Seal and Open (when secured) while a host that knows every id
// but not the key injects each forgery of issue 15 every 5 ms of virtual
// time: data for the object being sent, EOT, SQUELCH, data far beyond the
// object window, a CMD(CC) pinning the GRTT at 10 s, NORM_INFO naming
// "../../etc/passwd", replays of the sender's own packets, and ACKs from a
// node (3) that the sender waits for and that never runs.
func runAttack(t *testing.T, secured bool) attackResult {
	const txID, rxID, ghost = 1, 2, 3
	data := bytes.Repeat([]byte("the real payload "), 12000) // ~200 kB
	keys := secure.NewKeyring(testKey(1, 1))
	attackerKeys := secure.NewKeyring(testKey(1, 99)) // same key id, wrong secret
	var txSeal, rxSeal, evil *secure.Sealer
	var txOpen, rxOpen *secure.Opener
	if secured {
		txSeal = must[*secure.Sealer](t)(secure.NewSealer(secure.Config{Keys: keys}, t0))
		rxSeal = must[*secure.Sealer](t)(secure.NewSealer(secure.Config{Keys: keys}, t0))
		txOpen = must[*secure.Opener](t)(secure.NewOpener(secure.Config{Keys: keys}))
		rxOpen = must[*secure.Opener](t)(secure.NewOpener(secure.Config{Keys: keys}))
	}
	evil = must[*secure.Sealer](t)(secure.NewSealer(secure.Config{Keys: attackerKeys}, t0))

	tx := must[*sender.Sender](t)(sender.New(sender.Config{NodeID: txID, Rand: rand.New(rand.NewPCG(1, 2)),
		Rate: 10e6, GRTT: 10 * time.Millisecond, AckingNodes: []uint32{rxID, ghost}, RobustFactor: 5, FlushTime: -1}, t0))
	rx := must[*receiver.Receiver](t)(receiver.New(receiver.Config{NodeID: rxID, Rand: rand.New(rand.NewPCG(3, 4))}))
	id := must[uint16](t)(tx.SendData(data, []byte("good.bin")))
	if err := tx.SetWatermark(id); err != nil {
		t.Fatal(err)
	}
	txAddr := netip.MustParseAddrPort("10.0.0.1:6003")
	rxAddr := netip.MustParseAddrPort("10.0.0.2:6003")
	var res attackResult

	// What the attacker has sniffed: the sender's instance and its
	// latest packets (sealed, as on the wire), and the watermark's ref.
	var inst uint16
	var captured [][]byte
	var wmRef *framing.SymbolRef
	seq := uint16(0)
	fwd := func(b []byte, seal *secure.Sealer, open *secure.Opener, now time.Time) ([]byte, []byte) {
		if !secured {
			return b, b
		}
		w, err := seal.Seal(nil, b, now)
		if err != nil {
			t.Fatal(err)
		}
		wire := bytes.Clone(w)
		out, err := open.Open(w, now)
		if err != nil {
			t.Fatalf("genuine packet refused: %v", err)
		}
		return wire, out
	}
	toRx := func(now time.Time, b []byte) {
		if secured {
			var err error
			if b, err = rxOpen.Open(b, now); err != nil {
				return
			}
		}
		_ = rx.HandlePacket(now, txAddr, b)
	}
	toTx := func(now time.Time, b []byte) {
		if secured {
			var err error
			if b, err = txOpen.Open(b, now); err != nil {
				return
			}
		}
		_ = tx.HandlePacket(now, rxAddr, b)
	}
	forge := func(now time.Time) {
		if inst == 0 {
			return // nothing sniffed yet
		}
		seq++
		sf := framing.SenderFields{InstanceID: inst, GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: 3}
		hdr := func(ty framing.Type, src uint32) framing.Header {
			return framing.Header{Type: ty, Sequence: seq, SourceID: src}
		}
		fti := must[framing.Extensions](t)(framing.AppendFTI(nil, 5, framing.FTI{TransferLength: uint64(len(data)), SymbolLength: 1400, MaxBlockLen: 64}))
		pin := sf
		pin.GRTT = framing.QuantizeRTT(10 * time.Second)
		var toReceiver [][]byte
		add := func(m framing.Message) { toReceiver = append(toReceiver, must[[]byte](t)(m.Append(nil))) }
		for sym := range uint16(4) {
			add(framing.Message{Type: framing.TypeData, Data: framing.Data{Header: hdr(framing.TypeData, txID), SenderFields: sf,
				FECID: 5, ObjectID: id, PayloadID: framing.PayloadID{Block: 0, Symbol: sym}, Ext: fti, Payload: bytes.Repeat([]byte{0xee}, 1400)}})
		}
		add(framing.Message{Type: framing.TypeData, Data: framing.Data{Header: hdr(framing.TypeData, txID), SenderFields: sf,
			FECID: 5, ObjectID: id + 5000, Ext: fti, Payload: bytes.Repeat([]byte{0xee}, 1400)}})
		add(framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd, txID), SenderFields: sf, Flavor: framing.FlavorEOT}})
		add(framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd, txID), SenderFields: sf, Flavor: framing.FlavorSquelch,
			Ref: framing.SymbolRef{FECID: 5, ObjectID: id + 1}, Content: framing.AppendObjectID(nil, id)}})
		add(framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd, txID), SenderFields: pin, Flavor: framing.FlavorCC,
			CCSequence: seq, SendTime: framing.Timestamp{Sec: 1}}})
		add(framing.Message{Type: framing.TypeInfo, Info: framing.Info{Header: hdr(framing.TypeInfo, txID), SenderFields: sf,
			Flags: framing.FlagInfo, FECID: 5, ObjectID: id, Ext: fti, Content: []byte("../../etc/passwd")}})
		n := len(toReceiver)
		for _, b := range toReceiver[:n] {
			// Each forgery plain, and sealed under the attacker's own key.
			toReceiver = append(toReceiver, must[[]byte](t)(evil.Seal(nil, b, now)))
		}
		if secured {
			toReceiver = append(toReceiver, captured...)
		}
		for _, b := range toReceiver {
			res.injectedRx++
			toRx(now, b)
		}
		if wmRef != nil {
			ack := must[[]byte](t)((&framing.Message{Type: framing.TypeAck, Ack: framing.Ack{Header: hdr(framing.TypeAck, ghost),
				ServerID: txID, InstanceID: inst, AckType: framing.AckFlush,
				Payload: must[[]byte](t)(framing.AppendSymbolRef(nil, *wmRef, 0))}}).Append(nil))
			for _, b := range [][]byte{ack, must[[]byte](t)(evil.Seal(nil, ack, now))} {
				res.injectedTx++
				toTx(now, b)
			}
		}
	}

	var out framing.Outbox
	now := t0
	nextAttack := t0
	done, wmDone := false, false
	for now.Before(t0.Add(60*time.Second)) && !(done && wmDone) {
		if !now.Before(nextAttack) {
			forge(now)
			nextAttack = now.Add(5 * time.Millisecond)
		}
		out.Reset()
		next := tx.Poll(now, &out)
		captured = captured[:0]
		for i := range out.Len() {
			b, _ := out.Packet(i)
			var m framing.Message
			if err := m.Unmarshal(b); err == nil && m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorFlush && len(m.Cmd.Content) > 0 {
				r := m.Cmd.Ref
				wmRef = &r
			}
			if h, _, err := framing.Peek(b); err == nil && h.Type != framing.TypeNack && h.Type != framing.TypeAck {
				inst = binary16(b[8:])
			}
			wire, plain := fwd(bytes.Clone(b), txSeal, rxOpen, now)
			if len(captured) < 4 {
				captured = append(captured, wire)
			}
			_ = rx.HandlePacket(now, txAddr, plain)
		}
		out.Reset()
		if n := rx.Poll(now, &out); n.Before(next) {
			next = n
		}
		for i := range out.Len() {
			b, _ := out.Packet(i)
			_, plain := fwd(bytes.Clone(b), rxSeal, txOpen, now)
			_ = tx.HandlePacket(now, rxAddr, plain)
		}
		for _, e := range rx.Events() {
			switch e.Kind {
			case receiver.EventCompleted:
				if e.Object == id {
					res.data, done = e.Data, true
				}
			case receiver.EventInfo:
				res.names = append(res.names, bytes.Clone(e.Info))
			case receiver.EventAborted:
				res.aborted, done = true, true
			case receiver.EventSenderGone:
				res.eot = true
			}
		}
		for _, e := range tx.Events() {
			switch {
			case e.Kind == sender.EventAck && e.Node == ghost && e.Err == nil:
				res.forgedAcked = true
			case e.Kind == sender.EventWatermark:
				wmDone = true
			}
		}
		if next.After(nextAttack) {
			next = nextAttack
		}
		if !next.After(now) {
			next = now.Add(time.Microsecond)
		}
		now = next
	}
	res.grtt = tx.Stats().GRTT
	if secured {
		res.rxOpen, res.txOpen = rxOpen.Stats(), txOpen.Stats()
	}
	return res
}

func binary16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// TestSpoofing: with a group key every forgery is refused before the
// engines see it (the transfer completes byte-exact, under its real name,
// node 3 is not taken as acknowledging) and every forged packet is counted;
// without one the same attack run takes the transfer apart, which shows
// the forgeries are real.
func TestSpoofing(t *testing.T) {
	want := bytes.Repeat([]byte("the real payload "), 12000)
	sec := runAttack(t, true)
	if !bytes.Equal(sec.data, want) || sec.aborted || sec.eot {
		t.Fatalf("secured transfer: %d bytes, equal %v, aborted %v, forged EOT taken %v",
			len(sec.data), bytes.Equal(sec.data, want), sec.aborted, sec.eot)
	}
	for _, n := range sec.names {
		if string(n) != "good.bin" {
			t.Fatalf("receiver saw the name %q", n)
		}
	}
	if sec.forgedAcked {
		t.Fatal("forged ACK confirmed delivery for node 3")
	}
	if sec.grtt >= time.Second {
		t.Fatalf("GRTT pinned at %v", sec.grtt)
	}
	if sec.injectedRx == 0 || sec.injectedTx == 0 {
		t.Fatalf("no attack ran: %+v", sec)
	}
	if sec.rxOpen.Rejected() != sec.injectedRx || sec.txOpen.Rejected() != sec.injectedTx {
		t.Fatalf("rejected %d of %d forgeries at the receiver, %d of %d at the sender (rx %+v, tx %+v)",
			sec.rxOpen.Rejected(), sec.injectedRx, sec.txOpen.Rejected(), sec.injectedTx, sec.rxOpen, sec.txOpen)
	}
	if sec.rxOpen.Malformed == 0 || sec.rxOpen.BadTag == 0 || sec.rxOpen.Replayed == 0 || sec.txOpen.BadTag == 0 {
		t.Fatalf("causes not all seen: rx %+v tx %+v", sec.rxOpen, sec.txOpen)
	}
	t.Logf("secured: %d forgeries to the receiver, %d to the sender, all refused: rx %+v", sec.injectedRx, sec.injectedTx, sec.rxOpen)

	plain := runAttack(t, false)
	broken := !bytes.Equal(plain.data, want) || plain.forgedAcked || plain.eot || plain.aborted
	if !broken {
		t.Fatalf("without a key the forgeries did nothing (%+v): the attack is not testing anything", plain)
	}
	t.Logf("unsecured: data intact %v, forged ack taken %v, forged EOT taken %v, aborted %v",
		bytes.Equal(plain.data, want), plain.forgedAcked, plain.eot, plain.aborted)
}
