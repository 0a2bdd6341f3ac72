package framing_test

import (
	"testing"

	"github.com/shoalnet/shoal/framing"
)

// hotMessages are the per-packet messages of the engines' steady state.
func hotMessages(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	var m framing.Message
	forEachPayload(t, "normcast-sample.pcap", func(_ int, p []byte) {
		if m.Unmarshal(p) != nil {
			return
		}
		switch {
		case m.Type == framing.TypeData:
			out["DATA"] = p
		case m.Type == framing.TypeNack:
			out["NACK"] = p
		case m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorCC:
			out["CMD(CC)"] = p
		}
	})
	return out
}

// TestZeroAllocs asserts what the benchmarks show: parsing and encoding the
// hot-path messages allocates nothing.
func TestZeroAllocs(t *testing.T) {
	buf := make([]byte, 0, 2048)
	for name, p := range hotMessages(t) {
		var d framing.Data
		var n framing.Nack
		var c framing.Cmd
		var parse func() error
		var app func() ([]byte, error)
		switch name {
		case "DATA":
			parse, app = func() error { return d.Unmarshal(p) }, func() ([]byte, error) { return d.Append(buf[:0]) }
		case "NACK":
			parse, app = func() error { return n.Unmarshal(p) }, func() ([]byte, error) { return n.Append(buf[:0]) }
		case "CMD(CC)":
			parse, app = func() error { return c.Unmarshal(p) }, func() ([]byte, error) { return c.Append(buf[:0]) }
		}
		if a := testing.AllocsPerRun(100, func() {
			if err := parse(); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%s Unmarshal: %v allocs", name, a)
		}
		if a := testing.AllocsPerRun(100, func() {
			if _, err := app(); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%s Append: %v allocs", name, a)
		}
	}
	// Building NACK content item by item, into a reused buffer.
	items := []framing.SymbolRef{{FECID: 5, ObjectID: 1}, {FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Symbol: 7}}}
	if a := testing.AllocsPerRun(100, func() {
		c, err := framing.AppendRepairRequest(buf[:0], framing.FormItems, framing.RepairSegment, 0, items)
		if err != nil || len(c) == 0 {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("AppendRepairRequest: %v allocs", a)
	}
}

func benchParse(b *testing.B, name string, u interface{ Unmarshal([]byte) error }) {
	p := hotMessages(b)[name]
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if err := u.Unmarshal(p); err != nil {
			b.Fatal(err)
		}
	}
}

func benchAppend(b *testing.B, name string, c interface {
	Unmarshal([]byte) error
	Append([]byte) ([]byte, error)
}) {
	p := hotMessages(b)[name]
	if err := c.Unmarshal(p); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := c.Append(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalData(b *testing.B)  { benchParse(b, "DATA", &framing.Data{}) }
func BenchmarkAppendData(b *testing.B)     { benchAppend(b, "DATA", &framing.Data{}) }
func BenchmarkUnmarshalNack(b *testing.B)  { benchParse(b, "NACK", &framing.Nack{}) }
func BenchmarkAppendNack(b *testing.B)     { benchAppend(b, "NACK", &framing.Nack{}) }
func BenchmarkUnmarshalCmdCC(b *testing.B) { benchParse(b, "CMD(CC)", &framing.Cmd{}) }
func BenchmarkAppendCmdCC(b *testing.B)    { benchAppend(b, "CMD(CC)", &framing.Cmd{}) }
