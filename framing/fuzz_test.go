package framing_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/shoalnet/shoal/framing"
)

// addSeeds seeds a fuzz target with every payload of the reference captures
// and one encoded sample of every message kind.
func addSeeds(f *testing.F) {
	for _, name := range goldenCaptures {
		forEachPayload(f, name, func(_ int, p []byte) { f.Add(p) })
	}
	for _, m := range sampleMessages(f) {
		b, err := m.Append(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkRoundTrip is the property every parser must have: whatever it
// accepts appends without error, and parsing what was appended gives the
// same value and, appended again, the same bytes.
func checkRoundTrip(t *testing.T, m *framing.Message) {
	t.Helper()
	b1, err := m.Append(nil)
	if err != nil {
		t.Fatalf("accepted message does not append: %v", err)
	}
	var m2 framing.Message
	if err := m2.Unmarshal(b1); err != nil {
		t.Fatalf("appended message does not parse: %v\n% x", err, b1)
	}
	v1, v2 := *m, m2
	normalize(&v1)
	normalize(&v2)
	if !reflect.DeepEqual(v1, v2) {
		t.Fatalf("value changed in round trip\nfirst  %+v\nsecond %+v", v1, v2)
	}
	b2, err := m2.Append(nil)
	if err != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("bytes changed in round trip: %v\n% x\n% x", err, b1, b2)
	}
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	var pe *framing.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
}

// fuzzOne fuzzes the parser of one message type.
func fuzzOne(f *testing.F, typ framing.Type) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m framing.Message
		var err error
		switch typ {
		case framing.TypeInfo:
			err = m.Info.Unmarshal(b)
		case framing.TypeData:
			err = m.Data.Unmarshal(b)
		case framing.TypeCmd:
			err = m.Cmd.Unmarshal(b)
		case framing.TypeNack:
			err = m.Nack.Unmarshal(b)
		case framing.TypeAck:
			err = m.Ack.Unmarshal(b)
		case framing.TypeReport:
			err = m.Report.Unmarshal(b)
		}
		if err != nil {
			checkErr(t, err)
			return
		}
		m.Type = typ
		checkRoundTrip(t, &m)
	})
}

func FuzzInfo(f *testing.F)   { fuzzOne(f, framing.TypeInfo) }
func FuzzData(f *testing.F)   { fuzzOne(f, framing.TypeData) }
func FuzzCmd(f *testing.F)    { fuzzOne(f, framing.TypeCmd) }
func FuzzNack(f *testing.F)   { fuzzOne(f, framing.TypeNack) }
func FuzzAck(f *testing.F)    { fuzzOne(f, framing.TypeAck) }
func FuzzReport(f *testing.F) { fuzzOne(f, framing.TypeReport) }

// FuzzMessage fuzzes the dispatching parser and Peek.
func FuzzMessage(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, hdrLen, perr := framing.Peek(b)
		var m framing.Message
		err := m.Unmarshal(b)
		if perr != nil && err == nil {
			t.Fatalf("Peek rejects (%v) what Unmarshal accepts", perr)
		}
		if err != nil {
			checkErr(t, err)
			return
		}
		if h != m.Header() || hdrLen > len(b) {
			t.Fatalf("Peek %+v (hdr_len %d) disagrees with %+v", h, hdrLen, m.Header())
		}
		checkRoundTrip(t, &m)
	})
}

// FuzzExtensions runs the extension accessors over arbitrary bytes, which
// need not have been validated: they must stop and not panic, and what they
// decode must re-encode to the same value.
func FuzzExtensions(f *testing.F) {
	var m framing.Message
	for _, name := range goldenCaptures {
		forEachPayload(f, name, func(_ int, p []byte) {
			if m.Unmarshal(p) == nil && m.Type == framing.TypeData {
				f.Add([]byte(m.Data.Ext))
			}
		})
	}
	for _, s := range sampleMessages(f) {
		f.Add([]byte(s.Nack.Ext))
		f.Add([]byte(s.Data.Ext))
		f.Add([]byte(s.Cmd.Ext))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := framing.Extensions(b)
		n := 0
		for x, off, ok := e.Next(0); ok; x, off, ok = e.Next(off) {
			if len(x.Raw) < 4 || x.Raw[0] != x.Type {
				t.Fatalf("bad extension %+v", x)
			}
			n++
		}
		if n > len(b)/4 {
			t.Fatalf("%d extensions in %d bytes", n, len(b))
		}
		for _, id := range []uint8{0, 2, 5, 129} {
			fti, ok, err := e.FTI(id)
			if !ok || err != nil {
				continue
			}
			enc, err := framing.AppendFTI(nil, id, fti)
			if err != nil {
				t.Fatalf("decoded FTI %+v does not encode: %v", fti, err)
			}
			back, _, err := enc.FTI(id)
			if err != nil || back != fti {
				t.Fatalf("FTI round trip %+v -> %+v (%v)", fti, back, err)
			}
		}
		if cc, ok := e.CC(); ok {
			if back, _ := framing.AppendCC(nil, cc).CC(); back != cc {
				t.Fatalf("EXT_CC round trip %+v -> %+v", cc, back)
			}
		}
		if r, ok := e.Rate(); ok {
			if back, _ := framing.AppendRate(nil, r).Rate(); back != r {
				t.Fatalf("EXT_RATE round trip %x -> %x", r, back)
			}
		}
		if p, ok := e.Pace(); ok {
			if back, _ := framing.AppendPace(nil, p).Pace(); back != p {
				t.Fatalf("EXT_PACE round trip %+v -> %+v", p, back)
			}
		}
	})
}

// FuzzRepairRequests walks arbitrary NACK content with the iterators and
// checks that what they decode encodes back to the same items.
func FuzzRepairRequests(f *testing.F) {
	for _, s := range sampleMessages(f) {
		f.Add(s.Nack.Content)
		f.Add(s.Cmd.Content)
	}
	f.Fuzz(func(t *testing.T, c []byte) {
		var items []framing.SymbolRef
		for r, off, ok := framing.NextRepairRequest(c, 0); ok; r, off, ok = framing.NextRepairRequest(c, off) {
			items = items[:0]
			for s, o, ok := r.Item(0, 16); ok; s, o, ok = r.Item(o, 16) {
				items = append(items, s)
			}
			if r.Form < framing.FormItems || r.Form > framing.FormErasures || (r.Form == framing.FormRanges && len(items)%2 != 0) {
				continue
			}
			enc, err := framing.AppendRepairRequest(nil, r.Form, r.Flags, 16, items)
			if err != nil {
				t.Fatalf("items %+v do not encode: %v", items, err)
			}
			back, _, ok := framing.NextRepairRequest(enc, 0)
			if !ok || back.Form != r.Form || back.Flags != r.Flags {
				t.Fatalf("request header round trip: %+v -> %+v", r, back)
			}
			i := 0
			for s, o, ok := back.Item(0, 16); ok; s, o, ok = back.Item(o, 16) {
				if i >= len(items) || s != items[i] {
					t.Fatalf("item %d round trip: %+v", i, s)
				}
				i++
			}
			if i != len(items) {
				t.Fatalf("%d items back of %d", i, len(items))
			}
		}
	})
}

// FuzzStreamHeader parses arbitrary stream payloads.
func FuzzStreamHeader(f *testing.F) {
	f.Add(framing.AppendStreamHeader([]byte(nil), framing.StreamHeader{Len: 3, MsgStart: 1, Offset: 9}))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		d := framing.Data{Payload: p}
		h, data, err := d.StreamHeader()
		if err != nil {
			checkErr(t, err)
			return
		}
		d2 := framing.Data{Payload: append(framing.AppendStreamHeader(nil, h), data...)}
		h2, data2, err := d2.StreamHeader()
		if err != nil || h2 != h || !bytes.Equal(data, data2) {
			t.Fatalf("stream header round trip %+v -> %+v (%v)", h, h2, err)
		}
	})
}
