package simnet_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/secure"
	"github.com/shoalnet/shoal/sender"
)

// The secured scenario: a sender engine and receiver engines behind
// package secure's Sealer and Opener (as a session with Config.Security
// runs them) on a simulated LAN with loss, a receiver with the wrong key,
// and optionally a hostile node that sniffs the group and forges.

var (
	secGroup = netip.MustParseAddrPort("239.1.2.15:6003")
	secStart = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	secData  = bytes.Repeat([]byte("authenticated payload "), 15000) // 330 kB
)

const (
	secTxID  = 1
	secGhost = 99 // a node the sender waits for that never runs: only forged ACKs speak for it
)

// secNode seals what its engine sends and opens what it receives, and
// counts arrivals by origin: from the hostile node or the wrong-key
// receiver ("bad"), or from honest nodes.
type secNode struct {
	net             *simnet.Network
	id              simnet.NodeID
	seal            *secure.Sealer
	open            *secure.Opener
	out, box        framing.Outbox
	bad             map[simnet.NodeID]bool
	self            uint32 // this node's NORM id
	fromBad, fromOK uint64
}

func (n *secNode) in(p simnet.Packet) []byte {
	if len(p.Payload) >= 8 && binary.BigEndian.Uint32(p.Payload[4:]) == n.self {
		// The node's own packet, replayed back to it: genuine, and what
		// multicast loopback delivers anyway; NORM nodes ignore their own
		// packets, and so does this one, before any check.
		return nil
	}
	if n.bad[p.From] {
		n.fromBad++
	} else {
		n.fromOK++
	}
	if n.open == nil { // the unsecured control run
		return bytes.Clone(p.Payload)
	}
	b, err := n.open.Open(bytes.Clone(p.Payload), p.At)
	if err != nil {
		return nil
	}
	return b
}

func (n *secNode) send(now time.Time) {
	box := &n.out
	if n.seal != nil {
		n.box.Reset()
		n.seal.SealAll(&n.box, &n.out, now)
		box = &n.box
	}
	for i := range box.Len() {
		b, dst := box.Packet(i)
		if !dst.IsValid() {
			dst = secGroup
		}
		n.net.Send(now, n.id, dst, b)
	}
}

type secTx struct {
	secNode
	s                  *sender.Sender
	ghostAcked, wmDone bool
}

func (e *secTx) Handle(p simnet.Packet) time.Time {
	if b := e.in(p); b != nil {
		_ = e.s.HandlePacket(p.At, e.net.Addr(p.From), b)
	}
	return e.Poll(p.At)
}

func (e *secTx) Poll(now time.Time) time.Time {
	e.out.Reset()
	wake := e.s.Poll(now, &e.out)
	e.send(now)
	for _, ev := range e.s.Events() {
		switch {
		case ev.Kind == sender.EventAck && ev.Node == secGhost && ev.Err == nil:
			e.ghostAcked = true
		case ev.Kind == sender.EventWatermark:
			e.wmDone = true
		}
	}
	return wake
}

type secRx struct {
	secNode
	r       *receiver.Receiver
	data    []byte
	doneAt  time.Time
	names   []string
	aborted bool
}

func (e *secRx) Handle(p simnet.Packet) time.Time {
	if b := e.in(p); b != nil {
		_ = e.r.HandlePacket(p.At, e.net.Addr(p.From), b)
	}
	return e.Poll(p.At)
}

func (e *secRx) Poll(now time.Time) time.Time {
	e.out.Reset()
	wake := e.r.Poll(now, &e.out)
	e.send(now)
	for _, ev := range e.r.Events() {
		switch ev.Kind {
		case receiver.EventCompleted:
			if e.data == nil {
				e.data, e.doneAt = bytes.Clone(ev.Data), now
			}
		case receiver.EventInfo:
			e.names = append(e.names, string(ev.Info))
		case receiver.EventAborted:
			e.aborted = true
		}
	}
	return wake
}

// hostile sniffs the group for the sender's instance id, its latest sealed
// packets and the watermark it asks to be acknowledged, and every 5 ms
// sends each forgery of issue 15 to the group (plain and sealed under its
// own key), replays what it captured, and sends a forged ACK for the ghost
// node and a forged NACK to the sender.
type hostile struct {
	net      *simnet.Network
	id       simnet.NodeID
	tx       netip.AddrPort
	evil     *secure.Sealer
	inst     uint16
	captured [][]byte
	wm       *framing.SymbolRef
	object   uint16
	seq      uint16
	until    time.Time
	wake     time.Time
	sent     uint64
}

func (h *hostile) Handle(p simnet.Packet) time.Time {
	b := p.Payload
	if hd, _, err := framing.Peek(b); err == nil && hd.SourceID == secTxID && hd.Type != framing.TypeNack && hd.Type != framing.TypeAck {
		h.inst = binary.BigEndian.Uint16(b[8:])
		if len(h.captured) < 8 {
			h.captured = append(h.captured, bytes.Clone(b))
		}
		var m framing.Message
		if m.Unmarshal(b) == nil {
			if m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorFlush && len(m.Cmd.Content) > 0 {
				r := m.Cmd.Ref
				h.wm = &r
			}
			if m.Type == framing.TypeData {
				h.object = m.Data.ObjectID
			}
		}
	}
	return h.wake
}

func (h *hostile) Poll(now time.Time) time.Time {
	if now.Before(h.wake) {
		return h.wake
	}
	if now.After(h.until) {
		h.wake = time.Time{}
		return h.wake
	}
	if h.inst != 0 {
		h.forge(now)
	}
	h.wake = now.Add(5 * time.Millisecond)
	return h.wake
}

func (h *hostile) emit(now time.Time, dst netip.AddrPort, m framing.Message) {
	b, err := m.Append(nil)
	if err != nil {
		panic(err)
	}
	sealed, err := h.evil.Seal(nil, b, now)
	if err != nil {
		panic(err)
	}
	h.net.Send(now, h.id, dst, b)
	h.net.Send(now, h.id, dst, sealed)
	h.sent += 2
}

func (h *hostile) forge(now time.Time) {
	h.seq++
	sf := framing.SenderFields{InstanceID: h.inst, GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: 3}
	hdr := func(ty framing.Type, src uint32) framing.Header {
		return framing.Header{Type: ty, Sequence: h.seq, SourceID: src}
	}
	fti, _ := framing.AppendFTI(nil, 5, framing.FTI{TransferLength: uint64(len(secData)), SymbolLength: 1400, MaxBlockLen: 64})
	pin := sf
	pin.GRTT = framing.QuantizeRTT(10 * time.Second)
	id := h.object
	for sym := range uint16(4) {
		h.emit(now, secGroup, framing.Message{Type: framing.TypeData, Data: framing.Data{Header: hdr(framing.TypeData, secTxID), SenderFields: sf,
			FECID: 5, ObjectID: id, PayloadID: framing.PayloadID{Symbol: sym}, Ext: fti, Payload: bytes.Repeat([]byte{0xee}, 1400)}})
	}
	for _, m := range []framing.Message{
		{Type: framing.TypeData, Data: framing.Data{Header: hdr(framing.TypeData, secTxID), SenderFields: sf,
			FECID: 5, ObjectID: id + 5000, Ext: fti, Payload: bytes.Repeat([]byte{0xee}, 1400)}},
		{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd, secTxID), SenderFields: sf, Flavor: framing.FlavorEOT}},
		{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd, secTxID), SenderFields: sf, Flavor: framing.FlavorSquelch,
			Ref: framing.SymbolRef{FECID: 5, ObjectID: id + 1}, Content: framing.AppendObjectID(nil, id)}},
		{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd, secTxID), SenderFields: pin, Flavor: framing.FlavorCC,
			CCSequence: h.seq, SendTime: framing.Timestamp{Sec: 1}}},
		{Type: framing.TypeInfo, Info: framing.Info{Header: hdr(framing.TypeInfo, secTxID), SenderFields: sf,
			Flags: framing.FlagInfo, FECID: 5, ObjectID: id, Ext: fti, Content: []byte("../../etc/passwd")}},
	} {
		h.emit(now, secGroup, m)
	}
	for _, b := range h.captured {
		h.net.Send(now, h.id, secGroup, b)
		h.sent++
	}
	// Feedback to the sender: a NACK asking for everything again, and an
	// ACK for the ghost.
	req, _ := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairSegment, 0,
		[]framing.SymbolRef{{FECID: 5, ObjectID: id}})
	h.emit(now, h.tx, framing.Message{Type: framing.TypeNack, Nack: framing.Nack{Header: hdr(framing.TypeNack, 0x0b000001),
		ServerID: secTxID, InstanceID: h.inst, Content: req}})
	if h.wm != nil {
		ref, _ := framing.AppendSymbolRef(nil, *h.wm, 0)
		h.emit(now, h.tx, framing.Message{Type: framing.TypeAck, Ack: framing.Ack{Header: hdr(framing.TypeAck, secGhost),
			ServerID: secTxID, InstanceID: h.inst, AckType: framing.AckFlush, Payload: ref}})
	}
}

type secResult struct {
	tx      *secTx
	rxs     []*secRx // the receivers with the right key
	wrong   *secRx
	hostile *hostile
	stop    simnet.StopReason
}

// runSecured runs the scenario with good receivers, plus a wrong-key
// receiver and a hostile node if asked; without keys (the control run)
// packets go as the engines built them.
func runSecured(t *testing.T, good int, wrongKey, attack, keys bool) secResult {
	t.Helper()
	key := secure.GroupKey{ID: 1, Secret: [32]byte{1, 2, 3, 4}}
	cfg := secure.Config{Keys: secure.NewKeyring(key)}
	net := simnet.New(simnet.Config{Seed: 15, Start: secStart})
	lan := simnet.LinkConfig{Delay: 2 * time.Millisecond}
	lossy := simnet.LinkConfig{Delay: 2 * time.Millisecond, Loss: simnet.Bernoulli{P: 0.02}}
	bad := map[simnet.NodeID]bool{}
	node := func(name string, down simnet.LinkConfig, c secure.Config, self uint64) secNode {
		id := net.AddNode(name, simnet.NodeConfig{Up: lan, Down: down})
		net.Join(id, secGroup)
		sl, err := secure.NewSealer(c, secStart.Add(time.Duration(self)))
		if err != nil {
			t.Fatal(err)
		}
		op, err := secure.NewOpener(c)
		if err != nil {
			t.Fatal(err)
		}
		if !keys {
			sl, op = nil, nil
		}
		return secNode{net: net, id: id, seal: sl, open: op, bad: bad, self: uint32(self)}
	}
	var res secResult
	var eps []simnet.Endpoint
	acking := []uint32{secGhost}
	for i := range good {
		acking = append(acking, 0x0b000001+uint32(i))
	}
	tx := &secTx{secNode: node("tx", lan, cfg, secTxID)}
	var err error
	if tx.s, err = sender.New(sender.Config{NodeID: secTxID, Rand: rand.New(rand.NewPCG(1, 2)), Rate: 20e6, GRTT: 10 * time.Millisecond,
		Parity: 8, AckingNodes: acking, RobustFactor: 5, FlushTime: -1, PacketOverhead: cfg.Overhead()}, secStart); err != nil {
		t.Fatal(err)
	}
	id, err := tx.s.SendData(secData, []byte("good.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.s.SetWatermark(id); err != nil {
		t.Fatal(err)
	}
	res.tx = tx
	eps = append(eps, tx)
	newRx := func(name string, c secure.Config, nodeID uint32) *secRx {
		e := &secRx{secNode: node(name, lossy, c, uint64(nodeID))}
		if e.r, err = receiver.New(receiver.Config{NodeID: nodeID, Rand: rand.New(rand.NewPCG(uint64(nodeID), 4))}); err != nil {
			t.Fatal(err)
		}
		eps = append(eps, e)
		return e
	}
	for i := range good {
		res.rxs = append(res.rxs, newRx(fmt.Sprint("rx", i), cfg, 0x0b000001+uint32(i)))
	}
	if wrongKey {
		res.wrong = newRx("wrong", secure.Config{Keys: secure.NewKeyring(secure.GroupKey{ID: 1, Secret: [32]byte{9}})}, 0x0c000001)
		bad[res.wrong.id] = true
	}
	if attack {
		h := &hostile{net: net, tx: net.Addr(tx.id), until: secStart.Add(30 * time.Second)}
		h.id = net.AddNode("hostile", simnet.NodeConfig{Up: lan, Down: lan})
		net.Join(h.id, secGroup)
		if h.evil, err = secure.NewSealer(secure.Config{Keys: secure.NewKeyring(secure.GroupKey{ID: 1, Secret: [32]byte{6, 6, 6}})}, secStart); err != nil {
			t.Fatal(err)
		}
		bad[h.id] = true
		res.hostile = h
		eps = append(eps, h)
	}
	until := 60 * time.Second
	if !keys {
		until = 5 * time.Second // the control run may never finish
	}
	r := simnet.Run(net, eps, simnet.Limits{Until: secStart.Add(until), Done: func() bool {
		for _, e := range res.rxs {
			if e.data == nil {
				return false
			}
		}
		return tx.wmDone
	}})
	res.stop = r.Reason
	return res
}

// TestSecuredSpoofing: a hostile node that knows the sender's node and
// instance ids (sniffed from the group) but not the key runs every
// forgery of issue 15 throughout a lossy transfer to three receivers: the
// transfer completes byte-exact under its real name at every receiver,
// the ghost node is not taken as acknowledging, and every packet that
// reached an honest node from the hostile node or the wrong-key receiver
// is refused and counted, while every honest packet opens.
func TestSecuredSpoofing(t *testing.T) {
	res := runSecured(t, 3, true, true, true)
	if res.stop != simnet.StopDone {
		t.Fatalf("run stopped: %v", res.stop)
	}
	if res.hostile.sent == 0 || res.hostile.wm == nil {
		t.Fatalf("the attack did not run: %d forgeries, watermark sniffed %v", res.hostile.sent, res.hostile.wm != nil)
	}
	for i, e := range res.rxs {
		if !bytes.Equal(e.data, secData) || e.aborted {
			t.Errorf("receiver %d: %d bytes, equal %v, aborted %v", i, len(e.data), bytes.Equal(e.data, secData), e.aborted)
		}
		for _, n := range e.names {
			if n != "good.bin" {
				t.Errorf("receiver %d saw the name %q", i, n)
			}
		}
	}
	if res.tx.ghostAcked {
		t.Error("a forged ACK confirmed delivery for the ghost node")
	}
	if g := res.tx.s.Stats().GRTT; g >= time.Second {
		t.Errorf("GRTT pinned at %v", g)
	}
	for i, n := range append([]*secNode{&res.tx.secNode}, func() (s []*secNode) {
		for _, e := range res.rxs {
			s = append(s, &e.secNode)
		}
		return s
	}()...) {
		st := n.open.Stats()
		if n.fromBad == 0 || st.Rejected() != n.fromBad || st.Opened != n.fromOK {
			t.Errorf("node %d: %d packets from the hostile and wrong-key nodes, %d refused; %d honest, %d opened (%+v)",
				i, n.fromBad, st.Rejected(), n.fromOK, st.Opened, st)
		}
	}
	if st := res.rxs[0].open.Stats(); st.Malformed == 0 || st.BadTag == 0 || st.Replayed == 0 {
		t.Errorf("not every cause seen: %+v", st)
	}
	if w := res.wrong; w.data != nil || w.open.Stats().Opened != 0 || w.open.Stats().BadTag == 0 {
		t.Errorf("wrong-key receiver: data %v, %+v", w.data != nil, w.open.Stats())
	}

	// Control: without keys the same attack takes the transfer apart, so
	// the forgeries above are real ones.
	plain := runSecured(t, 3, false, true, false)
	broken := plain.tx.ghostAcked || plain.tx.s.Stats().GRTT >= time.Second
	for _, e := range plain.rxs {
		broken = broken || e.aborted || !bytes.Equal(e.data, secData)
		for _, n := range e.names {
			broken = broken || n != "good.bin"
		}
	}
	if !broken {
		t.Fatal("without keys the forgeries did nothing: the attack tests nothing")
	}
	r0 := plain.rxs[0]
	t.Logf("without keys: ghost acked %v, GRTT %v, receiver 0: intact %v, aborted %v, names %q",
		plain.tx.ghostAcked, plain.tx.s.Stats().GRTT, bytes.Equal(r0.data, secData), r0.aborted, r0.names)
}

// TestSecuredWrongKeyDoesNotSlow: a receiver with the wrong key in the
// group gets nothing and costs the others nothing: they finish by the
// same virtual time as without it.
func TestSecuredWrongKeyDoesNotSlow(t *testing.T) {
	finish := func(r secResult) time.Duration {
		var last time.Time
		for i, e := range r.rxs {
			if !bytes.Equal(e.data, secData) {
				t.Fatalf("receiver %d did not get the data", i)
			}
			if e.doneAt.After(last) {
				last = e.doneAt
			}
		}
		return last.Sub(secStart)
	}
	alone := finish(runSecured(t, 3, false, false, true))
	with := runSecured(t, 3, true, false, true)
	if w := with.wrong; w.data != nil || w.open.Stats().Opened != 0 || w.open.Stats().BadTag == 0 {
		t.Fatalf("wrong-key receiver: data %v, %+v", w.data != nil, w.open.Stats())
	}
	if d := finish(with); d > alone+alone/50 {
		t.Fatalf("with a wrong-key receiver the others finished at %v, without at %v", d, alone)
	}
	t.Logf("finished at %v alone, %v with a wrong-key receiver", alone, finish(with))
}
