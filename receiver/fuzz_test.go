package receiver

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/shoalnet/shoal/fec"
	"github.com/shoalnet/shoal/framing"
)

// Multi-packet fuzzing: each input is a small program of packets and
// clock steps, run against one receiver. Packets are built from valid
// templates whose fields the program picks, so the fuzzer reaches deep
// states (objects half received, streams, repair cycles, many senders)
// rather than stopping at the parser; raw and mutated packets cover the
// rest. After every call the invariants below must hold.

// fuzzTemplate is the FTI of an object; an object's template follows from
// its id, so that every packet for one object agrees on it.
type fuzzTemplate struct {
	fti   framing.FTI
	flags framing.ObjectFlags
}

var fuzzTemplates = []fuzzTemplate{
	{fti: framing.FTI{TransferLength: 1000, SymbolLength: 100, MaxBlockLen: 4, Parity: 2}},
	{fti: framing.FTI{TransferLength: 200_000, SymbolLength: 100, MaxBlockLen: 4, Parity: 2}},
	{fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 100, MaxBlockLen: 4, Parity: 2}, flags: framing.FlagStream},
	{fti: framing.FTI{TransferLength: 1000, SymbolLength: 100, MaxBlockLen: 4}, flags: framing.FlagFile | framing.FlagInfo},
	{fti: framing.FTI{TransferLength: 100_000, SymbolLength: 1000, MaxBlockLen: 64, Parity: 8}},
	{fti: framing.FTI{TransferLength: 1 << 30, SymbolLength: 65535, MaxBlockLen: 255}, flags: framing.FlagStream},
}

var fuzzConfig = Config{NodeID: myID, MaxSenders: 3, MaxObjects: 4, MaxBufferBytes: 5 << 20, MaxBlocks: 32,
	SenderTimeout: 5 * time.Second, RepairCycles: 3}

// fuzzProg reads a program from fuzz bytes; reading past the end yields
// zeros, and the program ends when the bytes do.
type fuzzProg struct {
	b   []byte
	off int
}

func (p *fuzzProg) done() bool { return p.off >= len(p.b) }

func (p *fuzzProg) u8() byte {
	if p.off >= len(p.b) {
		return 0
	}
	p.off++
	return p.b[p.off-1]
}

func (p *fuzzProg) u16() uint16 { return uint16(p.u8())<<8 | uint16(p.u8()) }

func (p *fuzzProg) bytes(n int) []byte {
	n = min(n, len(p.b)-p.off)
	p.off += n
	return p.b[p.off-n : p.off]
}

// fuzzPayload is the content of source symbol sym of a data object's
// block: a pattern of the sender, object and position, so delivered data
// can be checked. Parity is real parity over it.
func fuzzPayload(sender uint32, obj uint16, tp fuzzTemplate, blk uint32, sym int) []byte {
	part, err := fec.NewPartition(tp.fti.TransferLength, int(tp.fti.SymbolLength), int(tp.fti.MaxBlockLen))
	if err != nil || int(blk) >= part.Blocks() {
		return make([]byte, tp.fti.SymbolLength)
	}
	k := part.BlockLen(int(blk))
	if sym < k {
		off, n := part.Segment(int(blk), sym)
		return fuzzBytes(sender, obj, off, n)
	}
	codec, err := fec.RS8(int(tp.fti.MaxBlockLen), int(tp.fti.Parity))
	if err != nil || sym-k >= int(tp.fti.Parity) {
		return make([]byte, tp.fti.SymbolLength)
	}
	src := make([][]byte, k)
	for i := range k {
		off, n := part.Segment(int(blk), i)
		src[i] = make([]byte, tp.fti.SymbolLength)
		copy(src[i], fuzzBytes(sender, obj, off, n))
	}
	parity := make([][]byte, sym-k+1)
	for i := range parity {
		parity[i] = make([]byte, tp.fti.SymbolLength)
	}
	if codec.Encode(src, parity) != nil {
		return make([]byte, tp.fti.SymbolLength)
	}
	return parity[sym-k]
}

func fuzzBytes(sender uint32, obj uint16, off uint64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		x := off + uint64(i)
		b[i] = byte(x) ^ byte(x>>8)*7 ^ byte(obj)*13 ^ byte(sender)*29
	}
	return b
}

// fuzzState is a bound on the engine's state, for the work bound: senders,
// objects, the id windows, block buffers and the symbols they hold.
func fuzzState(r *Receiver) (objs, syms int) {
	for _, s := range r.remotes {
		objs += len(s.objs)
		for _, o := range s.objs {
			for _, bb := range o.blocks {
				syms += len(bb.syms)
			}
		}
	}
	return objs, syms
}

func checkInvariants(t *testing.T, r *Receiver, what string, pktLen int, work uint64, objs0, syms0 int) {
	t.Helper()
	cfg := r.cfg
	if r.buffer < 0 || r.buffer > cfg.MaxBufferBytes || r.blocks < 0 || r.blocks > cfg.MaxBlocks {
		t.Fatalf("%s: buffer %d bytes, %d blocks; limits %d, %d", what, r.buffer, r.blocks, cfg.MaxBufferBytes, cfg.MaxBlocks)
	}
	if st := r.Stats(); st.BufferBytes != r.buffer {
		t.Fatalf("%s: Stats().BufferBytes %d, engine %d", what, st.BufferBytes, r.buffer)
	}
	if len(r.remotes) > cfg.MaxSenders || r.bufs.bytes > maxSpareBytes || len(r.rejected) > 4*cfg.MaxSenders {
		t.Fatalf("%s: %d senders, %d spare bytes, %d rejected ids", what, len(r.remotes), r.bufs.bytes, len(r.rejected))
	}
	var held int64
	blocks := 0
	for _, s := range r.remotes {
		var sHeld int64
		sBlocks := 0
		if len(s.objs) > cfg.MaxObjects {
			t.Fatalf("%s: sender %x has %d objects pending", what, s.id, len(s.objs))
		}
		if s.synced && !serialLess(s.maxObj, s.base) && s.maxObj-s.base > r.window() {
			t.Fatalf("%s: sender %x spans objects %d to %d", what, s.id, s.base, s.maxObj)
		}
		for _, o := range s.objs {
			if o.held < 0 {
				t.Fatalf("%s: object %d holds %d bytes", what, o.id, o.held)
			}
			sHeld += o.held
			sBlocks += len(o.blocks)
		}
		if sHeld != s.held || sBlocks != s.blocks {
			t.Fatalf("%s: sender %x accounts %d bytes %d blocks, its objects hold %d, %d", what, s.id, s.held, s.blocks, sHeld, sBlocks)
		}
		held += s.held
		blocks += s.blocks
	}
	if held != r.buffer || blocks != r.blocks {
		t.Fatalf("%s: receiver accounts %d bytes %d blocks, senders hold %d, %d", what, r.buffer, r.blocks, held, blocks)
	}
	// Work: bounded by the packet's size and the state before and after
	// the call, never by numbers the packet carries.
	objs1, syms1 := fuzzState(r)
	objs, syms := max(objs0, objs1), max(syms0, syms1)
	senders := cfg.MaxSenders
	bound := 1000 + 4*pktLen + 8*(objs+senders+1)*(senders+objs+int(r.window())+cfg.MaxBlocks) + 4*syms
	if work > uint64(bound) {
		t.Fatalf("%s: %d steps for a %d-byte packet with %d objects and %d symbols held; bound %d", what, work, pktLen, objs, syms, bound)
	}
}

// runFuzzProgram runs one program, failing t when an invariant breaks, and
// returns the receiver.
func runFuzzProgram(t *testing.T, prog []byte) *Receiver {
	r := newRx(t, fuzzConfig)
	// The twin visits every sender on every Poll, as Poll did before due
	// times (remote.due): what the two send and report must not differ,
	// or a change to a sender's state failed to touch it.
	twin := newRx(t, fuzzConfig)
	twin.pollEvery = true
	var twinOut framing.Outbox
	p := &fuzzProg{b: prog}
	now := t0
	seqs := map[uint32]uint16{}
	forged := false // raw or mutated packets: delivered data may be anyone's
	var last []byte // the last packet built, for mutation
	var out framing.Outbox
	fields := func(inst byte) framing.SenderFields {
		return framing.SenderFields{InstanceID: uint16(inst & 1), GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: framing.QuantizeGroupSize(10)}
	}
	hdr := func(t framing.Type, sender uint32) framing.Header {
		seqs[sender]++
		return framing.Header{Type: t, Sequence: seqs[sender], SourceID: sender}
	}
	objID := func(b byte) uint16 {
		if b&0x80 != 0 {
			return 30000 + uint16(b&0x7f) // far ids
		}
		return uint16(b)
	}
	for steps := 0; !p.done() && steps < 200; steps++ {
		op := p.u8()
		sel := p.u8()
		sender := senderID + uint32(sel&3)
		var pkt []byte
		var err error
		switch op % 10 {
		case 0, 1, 2: // NORM_DATA from a template
			obj := objID(p.u8())
			tp := fuzzTemplates[int(obj)%len(fuzzTemplates)]
			blk := uint32(p.u16())
			if blk&0x8000 != 0 {
				blk = streamBlocks - blk&0x7fff
			}
			sym := int(p.u8())
			n := int(p.u8()) % min(int(tp.fti.SymbolLength), 200)
			var payload []byte
			if tp.flags&framing.FlagStream != 0 {
				payload = streamSeg(fuzzBytes(sender, obj, uint64(blk)<<8|uint64(sym), n), sel&4 != 0)
			} else {
				payload = fuzzPayload(sender, obj, tp, blk, sym)
			}
			ext, _ := framing.AppendFTI(nil, framing.FECRS8, tp.fti)
			m := framing.Data{Header: hdr(framing.TypeData, sender), SenderFields: fields(sel >> 4), FECID: framing.FECRS8,
				ObjectID: obj, Flags: tp.flags, PayloadID: framing.PayloadID{Block: blk, Symbol: uint16(sym)}, Ext: ext, Payload: payload}
			pkt, err = m.Append(nil)
		case 3: // NORM_CMD(FLUSH), maybe asking us for a watermark ACK
			c := framing.Cmd{Header: hdr(framing.TypeCmd, sender), SenderFields: fields(sel >> 4), Flavor: framing.FlavorFlush,
				Ref: framing.SymbolRef{FECID: 5, ObjectID: objID(p.u8()), PayloadID: framing.PayloadID{Block: uint32(p.u16()), Symbol: uint16(p.u8())}}}
			if sel&4 != 0 {
				c.Content = framing.AppendNodeID(nil, myID)
			}
			pkt, err = c.Append(nil)
		case 4: // NORM_CMD(SQUELCH)
			c := framing.Cmd{Header: hdr(framing.TypeCmd, sender), SenderFields: fields(sel >> 4), Flavor: framing.FlavorSquelch,
				Ref: framing.SymbolRef{FECID: 5, ObjectID: objID(p.u8()), PayloadID: framing.PayloadID{Block: uint32(p.u16()) << 8}}}
			for range p.u8() % 8 {
				c.Content = append(c.Content, 0, p.u8())
			}
			pkt, err = c.Append(nil)
		case 5: // NORM_CMD(CC) probe, us as CLR or not
			c := framing.Cmd{Header: hdr(framing.TypeCmd, sender), SenderFields: fields(sel >> 4), Flavor: framing.FlavorCC,
				CCSequence: p.u16(), Ext: framing.AppendRate(nil, framing.QuantizeRate(1e6))}
			if sel&4 != 0 {
				c.Content = framing.AppendCCNode(nil, framing.CCNode{NodeID: myID, Flags: framing.CCFlagCLR | framing.CCFlagRTT, RTT: framing.QuantizeRTT(20 * time.Millisecond)})
			}
			pkt, err = c.Append(nil)
		case 6: // NORM_INFO, or EOT
			obj := objID(p.u8())
			if sel&8 != 0 {
				c := framing.Cmd{Header: hdr(framing.TypeCmd, sender), SenderFields: fields(sel >> 4), Flavor: framing.FlavorEOT}
				pkt, err = c.Append(nil)
				break
			}
			tp := fuzzTemplates[int(obj)%len(fuzzTemplates)]
			ext, _ := framing.AppendFTI(nil, framing.FECRS8, tp.fti)
			m := framing.Info{Header: hdr(framing.TypeInfo, sender), SenderFields: fields(sel >> 4), Flags: tp.flags | framing.FlagInfo,
				FECID: framing.FECRS8, ObjectID: obj, Ext: ext, Content: []byte("name")}
			pkt, err = m.Append(nil)
		case 7: // the clock moves on
			now = now.Add(time.Duration(p.u16()) * time.Millisecond)
		case 8: // a raw packet
			forged = true
			pkt = append([]byte(nil), p.bytes(int(p.u8()))...)
		case 9: // the last packet, one byte changed
			if len(last) > 0 {
				forged = true
				pkt = append([]byte(nil), last...)
				pkt[int(p.u16())%len(pkt)] ^= p.u8() | 1
			}
		}
		if err != nil {
			t.Fatalf("building a packet: %v", err)
		}
		if pkt != nil {
			last = pkt
			objs0, syms0 := fuzzState(r)
			w := r.work
			_ = r.HandlePacket(now, from, pkt)
			checkInvariants(t, r, "HandlePacket", len(pkt), r.work-w, objs0, syms0)
			_ = twin.HandlePacket(now, from, pkt)
		}
		objs0, syms0 := fuzzState(r)
		w := r.work
		out.Reset()
		next := r.Poll(now, &out)
		checkInvariants(t, r, "Poll", 0, r.work-w, objs0, syms0)
		twinOut.Reset()
		twinNext := twin.Poll(now, &twinOut)
		evs, twinEvs := r.Events(), twin.Events()
		sameEvents := len(evs) == len(twinEvs)
		for i := 0; sameEvents && i < len(evs); i++ {
			a, b := evs[i], twinEvs[i]
			sameEvents = a.Kind == b.Kind && a.Sender == b.Sender && a.Object == b.Object && a.Size == b.Size && fmt.Sprint(a.Err) == fmt.Sprint(b.Err)
		}
		if !next.Equal(twinNext) || out.Len() != twinOut.Len() || !sameEvents {
			t.Fatalf("step %d: Poll by due times: next %v, %d packets, events %v; visiting every sender: %v, %d packets, events %v",
				steps, next, out.Len(), evs, twinNext, twinOut.Len(), twinEvs)
		}
		for i := range out.Len() {
			a, _ := out.Packet(i)
			b, _ := twinOut.Packet(i)
			if !bytes.Equal(a, b) {
				t.Fatalf("step %d: Poll by due times sent packet %d %x; visiting every sender: %x", steps, i, a, b)
			}
		}
		for _, e := range evs {
			if e.Kind != EventCompleted || forged || e.Stream || e.Data == nil {
				continue
			}
			want := fuzzBytes(e.Sender, e.Object, 0, int(e.Size))
			if !bytes.Equal(e.Data, want) {
				t.Fatalf("object %d of %x delivered corrupt", e.Object, e.Sender)
			}
		}
	}
	return r
}

// Program steps, for seeds: each is what runFuzzProgram reads.
func dataStep(sel, obj byte, blk uint16, sym, n byte) []byte {
	return []byte{0, sel, obj, byte(blk >> 8), byte(blk), sym, n}
}
func flushStep(sel, obj byte, blk uint16, sym byte) []byte {
	return []byte{3, sel, obj, byte(blk >> 8), byte(blk), sym}
}
func squelchStep(sel, obj byte, blk uint16, list ...byte) []byte {
	return append([]byte{4, sel, obj, byte(blk >> 8), byte(blk), byte(len(list))}, list...)
}
func clockStep(ms uint16) []byte { return []byte{7, 0, byte(ms >> 8), byte(ms)} }

func program(steps ...[]byte) []byte {
	var b []byte
	for _, s := range steps {
		b = append(b, s...)
	}
	return b
}

// fuzzSeeds are programs that reach the states the issue names: objects
// completed through parity and acknowledged, a stream near block 2^24 and
// a squelch there, forged big-symbol streams, far object ids, more senders
// than MaxSenders, sender timeouts.
var fuzzSeeds = [][]byte{
	// Object 0 (template 0: blocks of 4, 3 and 3 segments) whole, its first
	// block rebuilt from parity, then a watermark request.
	program(dataStep(0, 0, 0, 1, 0), dataStep(0, 0, 0, 2, 0), dataStep(0, 0, 0, 4, 0), dataStep(0, 0, 0, 5, 0),
		dataStep(0, 0, 1, 0, 0), dataStep(0, 0, 1, 1, 0), dataStep(0, 0, 1, 2, 0),
		dataStep(0, 0, 2, 0, 0), dataStep(0, 0, 2, 1, 0), dataStep(0, 0, 2, 2, 0),
		flushStep(4, 0, 2, 2), clockStep(100), clockStep(200)),
	// A stream (template 2) starting near block 2^24, then squelched there.
	program(dataStep(4, 2, 0xfff0, 0, 10), dataStep(0, 2, 0xfff0, 1, 10), clockStep(50),
		squelchStep(0, 2, 0xffff, 1, 3), clockStep(1000)),
	// The big-symbol stream (template 5), far object ids.
	program(dataStep(0, 5, 0, 0, 0), dataStep(0, 0x85, 0, 0, 3), flushStep(0, 0x90, 0, 0), clockStep(5000)),
	// Four senders for three places, then silence past the sender timeout.
	program(dataStep(0, 0, 0, 0, 0), clockStep(1), dataStep(1, 6, 0, 0, 0), clockStep(1), dataStep(2, 12, 0, 0, 0),
		clockStep(1), dataStep(3, 18, 0, 0, 0), clockStep(6000), dataStep(3, 24, 0, 0, 0)),
	// A probe, an INFO, an EOT, a raw packet and a mutation of it.
	{5, 4, 0, 1, 6, 0, 3, 6, 8, 0, 8, 0, 4, 0x10, 1, 2, 3, 9, 0, 0, 5, 0xff},
	// Template 4 (blocks of 64 + 8 parity) and a second, new instance of
	// the sender.
	program(dataStep(0, 4, 0, 70, 0), dataStep(0, 4, 0, 71, 0), dataStep(0x10, 4, 1, 0, 0), clockStep(50)),
}

func TestFuzzSeeds(t *testing.T) {
	st := runFuzzProgram(t, fuzzSeeds[0]).Stats()
	if st.ObjectsDone != 1 || st.FECRecovered != 2 || st.AcksSent != 1 || st.BufferBytes != 0 {
		t.Fatalf("seed 0 did not complete its object through parity and acknowledge it: %+v", st)
	}
	st = runFuzzProgram(t, fuzzSeeds[1]).Stats()
	if st.DataSymbols != 2 || st.BufferBytes != blockWindow/8 {
		t.Fatalf("seed 1 did not start its stream: %+v", st)
	}
	st = runFuzzProgram(t, fuzzSeeds[3]).Stats()
	if st.SendersEvicted != 1 {
		t.Fatalf("seed 3 evicted no sender: %+v", st)
	}
}

// FuzzReceiverProgram runs programs of packets and clock steps (see
// runFuzzProgram) against one receiver.
func FuzzReceiverProgram(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prog []byte) { runFuzzProgram(t, prog) })
}
