package framing_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// normalize turns empty slices into nil so values parsed from different
// buffers compare equal with reflect.DeepEqual.
func normalize(m *framing.Message) {
	nz := func(b *[]byte) {
		if len(*b) == 0 {
			*b = nil
		}
	}
	ne := func(e *framing.Extensions) {
		if len(*e) == 0 {
			*e = nil
		}
	}
	ne(&m.Info.Ext)
	nz(&m.Info.Content)
	ne(&m.Data.Ext)
	nz(&m.Data.Payload)
	ne(&m.Cmd.Ext)
	nz(&m.Cmd.Content)
	ne(&m.Nack.Ext)
	nz(&m.Nack.Content)
	ne(&m.Ack.Ext)
	nz(&m.Ack.Payload)
	nz(&m.Report.HeaderRest)
	nz(&m.Report.Content)
}

// must turns a (value, error) pair into the value, failing t on error.
func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

var sender = framing.SenderFields{InstanceID: 0x687f, GRTT: framing.QuantizeRTT(500e6), Backoff: 4, GroupSize: framing.QuantizeGroupSize(1000)}

// sampleMessages builds one message of every type and flavor, with every FEC
// id and repair form, including those the reference captures lack.
func sampleMessages(t testing.TB) map[string]framing.Message {
	hdr := func(ty framing.Type) framing.Header {
		return framing.Header{Type: ty, Sequence: 0xbeef, SourceID: 0x0a4d0001}
	}
	out := map[string]framing.Message{}
	add := func(name string, m framing.Message) { out[name] = m }

	ftis := map[uint8]framing.FTI{
		0:   {TransferLength: 1 << 40, SymbolLength: 1400, MaxBlockLen: 100000},
		2:   {TransferLength: 123456789, SymbolLength: 1024, MaxBlockLen: 400, Parity: 100, M: 16, G: 1},
		5:   {TransferLength: 204800, SymbolLength: 1400, MaxBlockLen: 64, Parity: 8},
		129: {TransferLength: 5, SymbolLength: 8, MaxBlockLen: 2, Parity: 1, InstanceID: 7},
	}
	pids := map[uint8]framing.PayloadID{
		0:   {Block: 0xffff, Symbol: 0x1234},
		2:   {Block: 0x0102, Symbol: 0x0304},
		5:   {Block: 0xabcdef, Symbol: 63},
		129: {Block: 0xdeadbeef, Symbol: 70, BlockLen: 200},
	}
	for fecID, fti := range ftis {
		ext := must[framing.Extensions](t)(framing.AppendFTI(nil, fecID, fti))
		add(fmt.Sprintf("DATA/fec%d", fecID), framing.Message{Type: framing.TypeData, Data: framing.Data{
			Header: hdr(framing.TypeData), SenderFields: sender, Flags: framing.FlagFile | framing.FlagInfo,
			FECID: fecID, ObjectID: 9, PayloadID: pids[fecID], FECM: 16, Ext: ext, Payload: []byte("segment bytes"),
		}})
		add(fmt.Sprintf("CMD(FLUSH)/fec%d", fecID), framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{
			Header: hdr(framing.TypeCmd), SenderFields: sender, Flavor: framing.FlavorFlush, FECM: 16,
			Ref:     framing.SymbolRef{FECID: fecID, ObjectID: 3, PayloadID: pids[fecID]},
			Content: framing.AppendNodeID(framing.AppendNodeID(nil, 0x0a4d0002), 0x0a4d0003),
		}})
	}
	m8 := framing.Message{Type: framing.TypeData, Data: framing.Data{
		Header: hdr(framing.TypeData), SenderFields: sender, FECID: 2, FECM: 8,
		PayloadID: framing.PayloadID{Block: 0x123456, Symbol: 0x78},
		Ext:       must[framing.Extensions](t)(framing.AppendFTI(nil, 2, framing.FTI{M: 8, G: 1, SymbolLength: 1400, MaxBlockLen: 200, Parity: 55})),
	}}
	add("DATA/fec2m8", m8)
	stream := framing.AppendStreamHeader(nil, framing.StreamHeader{Len: 5, MsgStart: 1, Offset: 1 << 31})
	add("DATA/stream", framing.Message{Type: framing.TypeData, Data: framing.Data{
		Header: hdr(framing.TypeData), SenderFields: sender, Flags: framing.FlagStream, FECID: 5, FECM: 16,
		Payload: append(stream, "hello"...),
	}})
	add("INFO", framing.Message{Type: framing.TypeInfo, Info: framing.Info{
		Header: hdr(framing.TypeInfo), SenderFields: sender, Flags: framing.FlagInfo | framing.FlagFile, FECID: 5, ObjectID: 1,
		Ext:     must[framing.Extensions](t)(framing.AppendFTI(nil, 5, ftis[5])),
		Content: []byte("dir/file.bin"),
	}})
	add("CMD(EOT)", framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{
		Header: hdr(framing.TypeCmd), SenderFields: sender, Flavor: framing.FlavorEOT, FECM: 16}})
	add("CMD(SQUELCH)", framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{
		Header: hdr(framing.TypeCmd), SenderFields: sender, Flavor: framing.FlavorSquelch, FECM: 16,
		Ref:     framing.SymbolRef{FECID: 5, ObjectID: 10, PayloadID: framing.PayloadID{Block: 2}},
		Content: framing.AppendObjectID(framing.AppendObjectID(nil, 7), 8),
	}})
	ccExt := framing.AppendPace(framing.AppendRate(nil, framing.QuantizeRate(1.25e6)), framing.Pace{})
	add("CMD(CC)", framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{
		Header: hdr(framing.TypeCmd), SenderFields: sender, Flavor: framing.FlavorCC, FECM: 16,
		CCSequence: 77, SendTime: framing.Timestamp{Sec: 1700000000, Usec: 999999}, Syn: true, Ext: ccExt,
		Content: framing.AppendCCNode(framing.AppendCCNode(nil,
			framing.CCNode{NodeID: 2, Flags: framing.CCFlagCLR | framing.CCFlagRTT, RTT: 100, Rate: 0x23d3}),
			framing.CCNode{NodeID: 3, Flags: framing.CCFlagPLR, RTT: 90, Rate: 0x1003}),
	}})
	var req []byte
	req = must[[]byte](t)(framing.AppendRepairRequest(req, framing.FormItems, framing.RepairSegment, 0, []framing.SymbolRef{
		{FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Block: 0, Symbol: 3}},
		{FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Block: 0, Symbol: 9}},
	}))
	req = must[[]byte](t)(framing.AppendRepairRequest(req, framing.FormRanges, framing.RepairBlock, 0, []framing.SymbolRef{
		{FECID: 129, ObjectID: 1, PayloadID: framing.PayloadID{Block: 4, BlockLen: 64}},
		{FECID: 129, ObjectID: 1, PayloadID: framing.PayloadID{Block: 9, BlockLen: 64}},
	}))
	req = must[[]byte](t)(framing.AppendRepairRequest(req, framing.FormErasures, framing.RepairSegment, 0, []framing.SymbolRef{
		{FECID: 5, ObjectID: 2, PayloadID: framing.PayloadID{Block: 1, Symbol: 6}},
	}))
	req = must[[]byte](t)(framing.AppendRepairRequest(req, framing.FormItems, framing.RepairInfo|framing.RepairObject, 0, []framing.SymbolRef{
		{FECID: 2, ObjectID: 5, PayloadID: framing.PayloadID{Block: 1, Symbol: 300}},
	}))
	add("CMD(REPAIR_ADV)", framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{
		Header: hdr(framing.TypeCmd), SenderFields: sender, Flavor: framing.FlavorRepairAdv, FECM: 16,
		AdvFlags: framing.RepairAdvLimit, Content: req,
	}})
	add("CMD(ACK_REQ)", framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{
		Header: hdr(framing.TypeCmd), SenderFields: sender, Flavor: framing.FlavorAckReq, FECM: 16,
		AckType: framing.AckAppBase + 3, AckID: 9, Content: framing.AppendNodeID(nil, 42),
	}})
	add("CMD(APPLICATION)", framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{
		Header: hdr(framing.TypeCmd), SenderFields: sender, Flavor: framing.FlavorApplication, FECM: 16,
		Content: []byte("app command"),
	}})
	unknownExt := must[framing.Extensions](t)(framing.AppendExtension(nil, []byte{99, 2, 1, 2, 3, 4, 5, 6}))
	add("NACK", framing.Message{Type: framing.TypeNack, Nack: framing.Nack{
		Header: hdr(framing.TypeNack), ServerID: 0x0a4d0001, InstanceID: 0x687f, FECM: 16,
		GRTTResponse: framing.Timestamp{Sec: 5, Usec: 6},
		Ext:          append(framing.AppendCC(nil, framing.CCFeedback{Sequence: 3, Flags: framing.CCFlagStart, RTT: 0x94, Loss: 7, Rate: 0x6b93, LossExt: 9}), unknownExt...),
		Content:      req,
	}})
	add("ACK(CC)", framing.Message{Type: framing.TypeAck, Ack: framing.Ack{
		Header: hdr(framing.TypeAck), ServerID: 1, InstanceID: 2, AckType: framing.AckCC,
		GRTTResponse: framing.Timestamp{Sec: 1, Usec: 2},
		Ext:          framing.AppendCC(nil, framing.CCFeedback{Sequence: 1, Flags: framing.CCFlagCLR, RTT: 1, Loss: 2, Rate: 3}),
	}})
	add("ACK(FLUSH)", framing.Message{Type: framing.TypeAck, Ack: framing.Ack{
		Header: hdr(framing.TypeAck), ServerID: 1, InstanceID: 2, AckType: framing.AckFlush,
		Payload: must[[]byte](t)(framing.AppendSymbolRef(nil, framing.SymbolRef{FECID: 5, ObjectID: 4, PayloadID: framing.PayloadID{Block: 2, Symbol: 48}}, 0)),
	}})
	add("ACK(APPLICATION)", framing.Message{Type: framing.TypeAck, Ack: framing.Ack{
		Header: hdr(framing.TypeAck), ServerID: 1, AckType: 200, AckID: 1, Payload: []byte("app ack"),
	}})
	add("REPORT", framing.Message{Type: framing.TypeReport, Report: framing.Report{
		Header: hdr(framing.TypeReport), HeaderRest: []byte{1, 2, 3, 4}, Content: []byte("stats")}})
	return out
}

// TestRoundTrip encodes one message of every kind, parses it back and checks
// that the value and the bytes survive.
func TestRoundTrip(t *testing.T) {
	for name, want := range sampleMessages(t) {
		t.Run(name, func(t *testing.T) {
			b, err := want.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == 0 || b[0]>>4 != 1 || framing.Type(b[0]&0xf) != want.Type {
				t.Fatalf("bad version/type octet % x", b[:1])
			}
			var got framing.Message
			if err := got.Unmarshal(b); err != nil {
				t.Fatalf("%v\n% x", err, b)
			}
			normalize(&want)
			normalize(&got)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the value\n got %+v\nwant %+v", got, want)
			}
			b2, err := got.Append(make([]byte, 3, 64)) // appends after existing bytes
			if err != nil || !bytes.Equal(b2[3:], b) {
				t.Fatalf("re-append: %v\n% x\n% x", err, b2[3:], b)
			}
		})
	}
}

func TestRepairItemsDecode(t *testing.T) {
	m := sampleMessages(t)["NACK"]
	type item struct {
		form  framing.RepairForm
		flags framing.RepairFlags
		ref   framing.SymbolRef
	}
	var got []item
	c := m.Nack.Content
	for r, off, ok := framing.NextRepairRequest(c, 0); ok; r, off, ok = framing.NextRepairRequest(c, off) {
		for s, o, ok := r.Item(0, 16); ok; s, o, ok = r.Item(o, 16) {
			got = append(got, item{r.Form, r.Flags, s})
		}
	}
	want := []item{
		{framing.FormItems, framing.RepairSegment, framing.SymbolRef{FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Symbol: 3}}},
		{framing.FormItems, framing.RepairSegment, framing.SymbolRef{FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Symbol: 9}}},
		{framing.FormRanges, framing.RepairBlock, framing.SymbolRef{FECID: 129, ObjectID: 1, PayloadID: framing.PayloadID{Block: 4, BlockLen: 64}}},
		{framing.FormRanges, framing.RepairBlock, framing.SymbolRef{FECID: 129, ObjectID: 1, PayloadID: framing.PayloadID{Block: 9, BlockLen: 64}}},
		{framing.FormErasures, framing.RepairSegment, framing.SymbolRef{FECID: 5, ObjectID: 2, PayloadID: framing.PayloadID{Block: 1, Symbol: 6}}},
		{framing.FormItems, framing.RepairInfo | framing.RepairObject, framing.SymbolRef{FECID: 2, ObjectID: 5, PayloadID: framing.PayloadID{Block: 1, Symbol: 300}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("items\n got %+v\nwant %+v", got, want)
	}
}

func TestFTIAndCCAccessors(t *testing.T) {
	m := sampleMessages(t)
	d := m["DATA/fec2m8"].Data
	f, ok, err := d.Ext.FTI(2)
	if err != nil || !ok || f.M != 8 || f.Parity != 55 || f.MaxBlockLen != 200 {
		t.Fatalf("FTI = %+v %v %v", f, ok, err)
	}
	// m=8 splits the payload id 24/8: Unmarshal must take m from EXT_FTI
	// even when the caller's value says 16.
	b, _ := (&framing.Message{Type: framing.TypeData, Data: d}).Append(nil)
	var got framing.Data
	got.FECM = 16
	if err := got.Unmarshal(b); err != nil || got.FECM != 8 || got.PayloadID != (framing.PayloadID{Block: 0x123456, Symbol: 0x78}) {
		t.Fatalf("m=8 payload id: %+v (m=%d) %v", got.PayloadID, got.FECM, err)
	}
	if _, ok, _ := framing.Extensions(nil).FTI(5); ok {
		t.Fatal("FTI found in empty extensions")
	}
	if _, ok, err := m["DATA/fec5"].Data.Ext.FTI(77); !ok || !errors.Is(err, framing.ErrFECID) {
		t.Fatalf("FTI with unknown fec id: ok=%v err=%v", ok, err)
	}
	cc, ok := m["NACK"].Nack.Ext.CC()
	if !ok || cc.Loss32() != 7<<16|9 || cc.Rate != 0x6b93 || cc.Flags != framing.CCFlagStart {
		t.Fatalf("CC = %+v %v", cc, ok)
	}
	if x, ok := m["NACK"].Nack.Ext.Find(99); !ok || !bytes.Equal(x.Body(), []byte{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("unknown extension not carried: %+v %v", x, ok)
	}
	if r, ok := m["CMD(CC)"].Cmd.Ext.Rate(); !ok || r != framing.QuantizeRate(1.25e6) {
		t.Fatalf("rate %x %v", r, ok)
	}
	c := m["CMD(CC)"].Cmd
	if c.CCNodeCount() != 2 || c.CCNode(1) != (framing.CCNode{NodeID: 3, Flags: framing.CCFlagPLR, RTT: 90, Rate: 0x1003}) {
		t.Fatalf("cc nodes %d %+v", c.CCNodeCount(), c.CCNode(1))
	}
	sq := m["CMD(SQUELCH)"].Cmd
	if sq.SquelchCount() != 2 || sq.SquelchedObject(1) != 8 {
		t.Fatalf("squelch list %x", sq.Content)
	}
	sd := m["DATA/stream"].Data
	h, data, err := sd.StreamHeader()
	if err != nil || h != (framing.StreamHeader{Len: 5, MsgStart: 1, Offset: 1 << 31}) || string(data) != "hello" {
		t.Fatalf("stream header %+v %q %v", h, data, err)
	}
}

func TestAppendRejectsBadValues(t *testing.T) {
	cases := map[string]framing.Message{
		"backoff 16": {Type: framing.TypeData, Data: framing.Data{FECID: 5, SenderFields: framing.SenderFields{Backoff: 16}}},
		"gsize 16":   {Type: framing.TypeInfo, Info: framing.Info{SenderFields: framing.SenderFields{GroupSize: 16}}},
		"fec id 5 block over 24 bits": {Type: framing.TypeData, Data: framing.Data{FECID: 5,
			PayloadID: framing.PayloadID{Block: 1 << 24}}},
		"fec id 5 symbol over 8 bits": {Type: framing.TypeData, Data: framing.Data{FECID: 5,
			PayloadID: framing.PayloadID{Symbol: 256}}},
		"unknown fec id":        {Type: framing.TypeData, Data: framing.Data{FECID: 3}},
		"unknown flavor":        {Type: framing.TypeCmd, Cmd: framing.Cmd{Flavor: 9}},
		"flush unknown fec id":  {Type: framing.TypeCmd, Cmd: framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 1}}},
		"cc node list ragged":   {Type: framing.TypeCmd, Cmd: framing.Cmd{Flavor: framing.FlavorCC, Content: []byte{1, 2, 3}}},
		"malformed extension":   {Type: framing.TypeNack, Nack: framing.Nack{Ext: framing.Extensions{3, 0, 0, 0}}},
		"malformed nack":        {Type: framing.TypeNack, Nack: framing.Nack{Content: []byte{1, 0, 0, 9}}},
		"extensions over 1 KiB": {Type: framing.TypeAck, Ack: framing.Ack{Ext: bigExt()}},
		"type 0":                {Type: 0},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			prefix := []byte{0xaa}
			b, err := m.Append(prefix)
			if err == nil {
				t.Fatalf("no error; appended % x", b)
			}
			if !bytes.Equal(b, prefix) {
				t.Fatalf("failed append changed the buffer: % x", b)
			}
		})
	}
	if _, err := framing.AppendFTI(nil, 5, framing.FTI{MaxBlockLen: 256}); !errors.Is(err, framing.ErrValue) {
		t.Fatalf("FTI k=256 for FEC id 5: %v", err)
	}
	if _, err := framing.AppendFTI(nil, 5, framing.FTI{TransferLength: 1 << 48}); !errors.Is(err, framing.ErrValue) {
		t.Fatalf("FTI 2^48 bytes: %v", err)
	}
	if _, err := framing.AppendRepairRequest(nil, framing.FormRanges, 0, 0, make([]framing.SymbolRef, 3)); err == nil {
		t.Fatal("odd range accepted")
	}
}

// bigExt is an extension area too long for the 8-bit hdr_len.
func bigExt() framing.Extensions {
	var e framing.Extensions
	for range 5 {
		raw := make([]byte, 252)
		raw[0], raw[1] = 99, 63
		e = append(e, raw...)
	}
	return e
}

func TestOutbox(t *testing.T) {
	var o framing.Outbox
	dst := netip.MustParseAddrPort("10.0.0.1:6003")
	for i := range 3 {
		b := append(o.Buf(), byte(i), byte(i))
		var d netip.AddrPort
		if i == 1 {
			d = dst
		}
		o.Commit(b, d)
	}
	if o.Len() != 3 {
		t.Fatalf("len %d", o.Len())
	}
	for i := range 3 {
		p, d := o.Packet(i)
		if !bytes.Equal(p, []byte{byte(i), byte(i)}) || (i == 1) != d.IsValid() {
			t.Fatalf("packet %d: % x %v", i, p, d)
		}
	}
	o.Reset()
	if o.Len() != 0 || len(o.Buf()) != 0 {
		t.Fatal("reset left packets")
	}
	if a := testing.AllocsPerRun(100, func() {
		o.Reset()
		for range 3 {
			o.Commit(append(o.Buf(), 1, 2, 3), netip.AddrPort{})
		}
	}); a != 0 {
		t.Fatalf("Outbox reuse allocates: %v", a)
	}
}

func TestOutboxSpan(t *testing.T) {
	var o framing.Outbox
	for i := range 4 {
		o.Commit(append(o.Buf(), byte(i), byte(i)), netip.AddrPort{})
	}
	if got := o.Span(1, 3); !bytes.Equal(got, []byte{1, 1, 2, 2}) {
		t.Fatalf("Span(1,3) = % x", got)
	}
	if got := o.Span(0, 4); len(got) != 8 {
		t.Fatalf("Span(0,4) = % x", got)
	}
}

// TestPaceExtension: EXT_PACE carries a receiver's socket wait and handling
// rate, is found among other extensions, and is a well-formed extension
// that codecs which do not know it can skip.
func TestPaceExtension(t *testing.T) {
	p := framing.Pace{Delay: framing.QuantizeRTT(25 * time.Millisecond), Flags: framing.PaceTrack, Rate: framing.QuantizeRate(60e6)}
	e := framing.AppendPace(framing.AppendCC(nil, framing.CCFeedback{Sequence: 3}), p)
	if err := e.Check(); err != nil {
		t.Fatal(err)
	}
	got, ok := e.Pace()
	if !ok || got != p {
		t.Fatalf("Pace() = %+v, %v; want %+v", got, ok, p)
	}
	if cc, ok := e.CC(); !ok || cc.Sequence != 3 {
		t.Fatalf("EXT_CC lost beside EXT_PACE: %+v %v", cc, ok)
	}
	if _, ok := framing.AppendRate(nil, 7).Pace(); ok {
		t.Fatal("Pace() found in an area without EXT_PACE")
	}
	if len(framing.AppendPace(nil, framing.Pace{})) != 8 {
		t.Fatal("EXT_PACE is not 8 bytes")
	}
}
