package sender

import (
	"bytes"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/shoalnet/shoal/fec"
	"github.com/shoalnet/shoal/framing"
)

// FuzzSenderSequence runs a sender through a sequence of feedback packets,
// application calls and clock steps decoded from the fuzz input (see
// fuzzRun), built from valid templates so that the fuzzer reaches repair
// cycles, watermarks, streams and purges rather than stopping at the
// parser. After every step: no panic; the repair queue, node list and
// cache within their bounds; the work of each Poll bounded by the state
// the sender holds and the packets it sent, never by numbers in packets;
// every packet sent well formed and every source symbol of a data object
// the object's own bytes. The same input run twice gives the same packets.
func FuzzSenderSequence(f *testing.F) {
	for _, p := range fuzzSeeds {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		if a, b := fuzzRun(t, prog), fuzzRun(t, prog); a != b {
			t.Fatal("the same input gave different packets")
		}
	})
}

// Operations of a fuzz program. Each is one byte (modulo opCount), followed
// by its arguments; bytes past the end read as zero.
const (
	opTick   = iota // dt: advance dt*500µs, polling at every wake-up
	opNack          // a NACK built from arguments (fuzzNack)
	opAck           // node, kind, block, symbol: an ACK(FLUSH)
	opRaw           // n, then n bytes: a raw packet
	opMutate        // a NACK as opNack, then pos, xor: one byte flipped
	opApp           // what, arg: an application call
	opStorm         // n, then a NACK as opNack sent from n node ids
	opJump          // dt: advance dt*100ms
	opCount
)

// seedReq is a repair request of a seed program: form, level flags, FEC id
// index (see fuzzNack) and items of four bytes (object index, object id
// delta, block, symbol).
type seedReq struct {
	form  framing.RepairForm
	flags framing.RepairFlags
	fec   byte
	items [][4]byte
}

// seedNack encodes the arguments of opNack (without the op).
func seedNack(node byte, reqs ...seedReq) []byte {
	b := []byte{node, byte(len(reqs) - 1)}
	for _, r := range reqs {
		n := len(r.items)
		if r.form == framing.FormRanges {
			n /= 2
		}
		b = append(b, byte(r.form), byte(r.flags), r.fec, byte(n-1))
		for _, it := range r.items {
			b = append(b, it[:]...)
		}
	}
	return b
}

func seed(parts ...[]byte) []byte { return slices.Concat(parts...) }

func op(o byte, args ...byte) []byte { return append([]byte{o}, args...) }

var fuzzSeeds = [][]byte{
	// The NACKs of issue 18: a block range to 0xFFFFFFF0 with FEC id 129
	// items, and to 0xFFFFFF with FEC id 5.
	seed(op(opTick, 100), op(opNack, seedNack(2, seedReq{framing.FormRanges, framing.RepairBlock, 1,
		[][4]byte{{0, 0, 1, 0}, {0, 0, 0x8f, 0}}})...), op(opTick, 200), op(opTick, 200)),
	seed(op(opTick, 100), op(opNack, seedNack(2, seedReq{framing.FormRanges, framing.RepairBlock, 0,
		[][4]byte{{0, 0, 1, 0}, {0, 0, 0x80, 0}}})...), op(opTick, 200), op(opTick, 200)),
	// Segment requests and erasure counts from many nodes, window after
	// window, with a watermark acknowledged wrongly, then exactly.
	seed(op(opTick, 100), op(opApp, 2, 0),
		op(opStorm, append([]byte{40}, seedNack(0, seedReq{framing.FormItems, framing.RepairSegment, 0,
			[][4]byte{{0, 0, 2, 0}, {0, 0, 2, 3}, {1, 0, 0, 1}}})[1:]...)...),
		op(opTick, 30),
		op(opStorm, append([]byte{40}, seedNack(0, seedReq{framing.FormErasures, framing.RepairSegment, 0,
			[][4]byte{{0, 0, 2, 3}}}, seedReq{framing.FormRanges, framing.RepairSegment, 0,
			[][4]byte{{0, 0, 2, 1}, {0, 0, 2, 5}}})[1:]...)...),
		op(opTick, 30), op(opAck, 2, 0, 0, 0), op(opAck, 2, 1), op(opTick, 200), op(opJump, 30)),
	// Whole objects and NORM_INFO, of every object id around the cache.
	seed(op(opTick, 100), op(opNack, seedNack(3, seedReq{framing.FormRanges, framing.RepairObject | framing.RepairInfo, 0,
		[][4]byte{{0, 0xf0, 0, 0}, {0, 0x7f, 0, 0}}})...),
		op(opTick, 100), op(opApp, 0, 9), op(opApp, 0, 10), op(opTick, 200), op(opJump, 50)),
	// The stream: repairs of blocks in and out of its ring.
	seed(op(opApp, 1, 200), op(opTick, 100), op(opApp, 1, 201), op(opTick, 100),
		op(opNack, seedNack(5, seedReq{framing.FormItems, framing.RepairSegment, 0, [][4]byte{{2, 0, 0, 1}, {2, 0, 1, 3}}},
			seedReq{framing.FormRanges, framing.RepairBlock, 0, [][4]byte{{2, 0, 0, 0}, {2, 0, 0x82, 0}}})...),
		op(opTick, 100), op(opApp, 4, 0), op(opJump, 100)),
	// Raw and mutated packets.
	seed(op(opRaw, 30, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), op(opTick, 10)),
	seed(op(opMutate, seedNack(2, seedReq{framing.FormRanges, framing.RepairBlock, 1, [][4]byte{{0, 0, 1, 0}, {0, 0, 9, 0}}})...),
		[]byte{30, 0x55}, op(opTick, 200)),
}

// fuzzReader hands out a program's bytes, then zeros.
type fuzzReader struct {
	b []byte
	i int
}

func (r *fuzzReader) done() bool { return r.i >= len(r.b) }

func (r *fuzzReader) next() byte {
	if r.i >= len(r.b) {
		r.i++
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

// fuzzSender is a sender small enough for every bound to be reached: 8
// nodes, 4 cached objects of 64-byte segments in blocks of 4.
func fuzzSender(t *testing.T) (*Sender, map[uint16][]byte, []uint16) {
	s, err := New(Config{NodeID: 1, Rand: rand.New(rand.NewPCG(1, 2)), Rate: 1e6, SegmentSize: 64, BlockLen: 4,
		Parity: 2, AutoParity: 1, GRTT: 5 * time.Millisecond, GRTTMax: 100 * time.Millisecond, RobustFactor: 3,
		CacheObjects: 4, AckingNodes: []uint32{2}, TrackReceivers: true, MaxNodes: 8}, t0)
	if err != nil {
		t.Fatal(err)
	}
	data := map[uint16][]byte{}
	var ids []uint16
	add := func(size int, info []byte) {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i*7 + size)
		}
		id, err := s.SendData(b, info)
		if err != nil {
			t.Fatal(err)
		}
		data[id], ids = b, append(ids, id)
	}
	add(40*4*64, nil)
	add(3*4*64-10, []byte("info"))
	id, err := s.OpenStream(3*4*64, nil, FlushPassive)
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, id)
	return s, data, ids
}

// fuzzRun runs prog (see the op constants) and returns a hash of
// everything the sender sent and reported.
func fuzzRun(t *testing.T, prog []byte) uint64 {
	s, data, ids := fuzzSender(t)
	stream := ids[2]
	r := &fuzzReader{b: prog}
	h := fnv.New64a()
	now := t0
	var out framing.Outbox
	var msg framing.Message

	check := func(what string) {
		if n := max(s.rq.len(), s.bq.len()); n > maxRepairJobs {
			t.Fatalf("%s: %d repair jobs in one queue", what, n)
		}
		if len(s.nodes) > s.cfg.MaxNodes || len(s.nodeSet) != len(s.nodes) || len(s.nodeSeen) != len(s.nodeSet) || !slices.IsSorted(s.nodeSet) {
			t.Fatalf("%s: nodes %v, index %v", what, s.nodes, s.nodeSet)
		}
		if len(s.flow) > s.cfg.MaxNodes || len(s.flowIndex) != len(s.flow) {
			t.Fatalf("%s: %d flow nodes, %d indexed", what, len(s.flow), len(s.flowIndex))
		}
		if len(s.objs) > s.cfg.CacheObjects || s.cacheSz > s.cfg.CacheBytes {
			t.Fatalf("%s: %d objects, %d bytes cached", what, len(s.objs), s.cacheSz)
		}
		if s.wm != nil && len(s.wm.pending) > s.cfg.MaxNodes {
			t.Fatalf("%s: watermark pending for %d nodes", what, len(s.wm.pending))
		}
		for _, e := range s.Events() {
			h.Write([]byte{byte(e.Kind), byte(e.Object), byte(e.Object >> 8), byte(e.Node)})
		}
	}
	handle := func(b []byte) {
		w := s.work
		_ = s.HandlePacket(now, netipZero, b)
		if s.work != w {
			t.Fatalf("HandlePacket did %d steps of repair work; it is deferred to Poll", s.work-w)
		}
		check("packet")
	}
	poll := func() time.Time {
		w, queued := s.work, s.rq.len()+s.bq.len()
		out.Reset()
		next := s.Poll(now, &out)
		// A window's plan has at most one repair per object and its INFO,
		// per block entry and per block range of the aggregator (1024
		// each), and one more to find its end; each costs two steps to
		// plan and one to leave the queue (or to take its turn at the back
		// of it). Each packet costs at most four. There are two plans:
		// the repairs, and the bulk repairs.
		plan := 2 * (2*len(s.objs) + 2*1024 + 1)
		if d := s.work - w; d > uint64(3*plan+queued+4*(out.Len()+1)) {
			t.Fatalf("Poll did %d steps of work for %d objects, %d jobs queued and %d packets", d, len(s.objs), queued, out.Len())
		}
		for i := range out.Len() {
			b, _ := out.Packet(i)
			h.Write(b)
			if err := msg.Unmarshal(b); err != nil {
				t.Fatalf("sent a malformed packet: %v", err)
			}
			if msg.Type != framing.TypeData {
				continue
			}
			d := &msg.Data
			src, ok := data[d.ObjectID]
			if !ok || len(src) == 0 {
				continue
			}
			part, _ := fec.NewPartition(uint64(len(src)), s.cfg.SegmentSize, s.cfg.BlockLen)
			blk, sym := int(d.PayloadID.Block), int(d.PayloadID.Symbol)
			if blk >= part.Blocks() {
				t.Fatalf("object %d: block %d sent, it has %d", d.ObjectID, blk, part.Blocks())
			}
			if sym >= part.BlockLen(blk) {
				continue // parity
			}
			off, n := part.Segment(blk, sym)
			if !bytes.Equal(d.Payload, src[off:off+uint64(n)]) {
				t.Fatalf("object %d block %d symbol %d: wrong payload", d.ObjectID, blk, sym)
			}
		}
		check("poll")
		return next
	}
	advance := func(d time.Duration) {
		end := now.Add(d)
		for range 256 {
			next := poll()
			if !next.After(now) {
				next = now.Add(time.Microsecond)
			}
			if next.After(end) {
				break
			}
			now = next
		}
		now = end
		poll()
	}

	for step := 0; step < 200 && !r.done(); step++ {
		switch r.next() % opCount {
		case opTick:
			advance(time.Duration(r.next()) * 500 * time.Microsecond)
		case opJump:
			advance(time.Duration(r.next()) * 100 * time.Millisecond)
		case opNack:
			handle(fuzzNack(s, r, ids, fuzzNode(r.next())))
		case opStorm:
			n := int(r.next() % 64)
			b := fuzzNack(s, r, ids, 0)
			for i := range n {
				b[4], b[5], b[6], b[7] = 0, 0, 1, byte(i)
				handle(b)
			}
		case opMutate:
			b := fuzzNack(s, r, ids, fuzzNode(r.next()))
			pos, x := int(r.next()), r.next()
			b[pos%len(b)] ^= x
			handle(b)
		case opRaw:
			n := int(r.next() % 128)
			b := make([]byte, n)
			for i := range b {
				b[i] = r.next()
			}
			if len(b) >= 14 {
				b[12], b[13] = byte(s.InstanceID()>>8), byte(s.InstanceID())
			}
			handle(b)
		case opAck:
			node, kind := fuzzNode(r.next()), r.next()
			ref := framing.SymbolRef{FECID: framing.FECRS8, ObjectID: ids[int(kind)%len(ids)],
				PayloadID: framing.PayloadID{Block: uint32(r.next()), Symbol: uint16(r.next())}}
			if s.wm != nil && kind&1 != 0 {
				ref = s.wm.ref
			}
			payload, _ := framing.AppendSymbolRef(nil, ref, 0)
			b, _ := (&framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: node}, ServerID: 1,
				InstanceID: s.InstanceID(), AckType: framing.AckFlush, Payload: payload}).Append(nil)
			handle(b)
		case opApp:
			what, arg := r.next(), int(r.next())
			switch what % 5 {
			case 0:
				b := make([]byte, arg*17)
				for i := range b {
					b[i] = byte(i * arg)
				}
				if id, err := s.SendData(b, nil); err == nil {
					data[id], ids = b, append(ids, id)
				}
			case 1:
				_, _ = s.WriteStream(stream, make([]byte, arg*3), arg&1 != 0)
			case 2:
				_ = s.SetWatermark(ids[arg%len(ids)])
			case 3:
				_ = s.SendCommand([]byte{byte(arg)})
			case 4:
				_ = s.CloseStream(stream)
			}
			check("app")
		}
	}
	return h.Sum64()
}

// fuzzNode maps a byte to one of 16 node ids, twice MaxNodes.
func fuzzNode(b byte) uint32 { return 2 + uint32(b%16) }

// fuzzNack builds a NACK from node to s: requests (count) of form, flags
// and FEC id from the program, each with items naming a known object (or
// one near it), a block (a high bit asks for one near the top of the FEC
// id's range) and a symbol.
func fuzzNack(s *Sender, r *fuzzReader, ids []uint16, node uint32) []byte {
	var content []byte
	var items []framing.SymbolRef
	for range 1 + r.next()%3 {
		form := framing.RepairForm(r.next() % 4) // 0, malformed, is left out
		flags := framing.RepairFlags(r.next() & 0x0f)
		fecID := [...]uint8{framing.FECRS8, framing.FECSmallBlock, framing.FECRS, framing.FECNoCode}[r.next()%4]
		items = items[:0]
		n := 1 + int(r.next()%3)
		if form == framing.FormRanges {
			n *= 2
		}
		for range n {
			id := ids[int(r.next())%len(ids)] + uint16(int8(r.next()))
			b := uint32(r.next())
			if b&0x80 != 0 {
				b = 0xffffffff - b&0x7f
			}
			sym := uint16(r.next())
			switch fecID {
			case framing.FECRS8:
				b, sym = b&0xffffff, sym&0xff
			case framing.FECRS, framing.FECNoCode:
				b &= 0xffff
			}
			items = append(items, framing.SymbolRef{FECID: fecID, ObjectID: id, PayloadID: framing.PayloadID{Block: b, Symbol: sym}})
		}
		if c, err := framing.AppendRepairRequest(content, form, flags, 0, items); err == nil {
			content = c
		}
	}
	b, err := (&framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: node},
		ServerID: 1, InstanceID: s.InstanceID(), Content: content}).Append(nil)
	if err != nil {
		b, _ = (&framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: node},
			ServerID: 1, InstanceID: s.InstanceID()}).Append(nil)
	}
	return b
}
