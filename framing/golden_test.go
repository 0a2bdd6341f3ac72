package framing_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/capture"
)

// forEachPayload calls fn with every UDP payload of a capture in testdata.
func forEachPayload(t testing.TB, name string, fn func(frame int, p []byte)) capture.Stats {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := capture.ReadUDP(f, func(d capture.Datagram) error {
		fn(d.Frame, bytes.Clone(d.Payload))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var goldenCaptures = []string{"normcast-sample.pcap", "normcast-sample-fec-ack.pcap"}

// TestGoldenCaptures parses every NORM packet the reference implementation
// sent or received in the captures and checks that appending the parsed
// value gives back the same bytes.
func TestGoldenCaptures(t *testing.T) {
	for _, name := range goldenCaptures {
		t.Run(name, func(t *testing.T) {
			counts := map[string]int{}
			var m framing.Message
			st := forEachPayload(t, name, func(frame int, p []byte) {
				if err := m.Unmarshal(p); err != nil {
					t.Fatalf("frame %d: %v\n% x", frame, err, p)
				}
				out, err := m.Append(nil)
				if err != nil {
					t.Fatalf("frame %d: append: %v", frame, err)
				}
				if !bytes.Equal(out, p) {
					t.Fatalf("frame %d: re-encoded bytes differ\n got % x\nwant % x", frame, out, p)
				}
				k := m.Type.String()
				if m.Type == framing.TypeCmd {
					k += "(" + m.Cmd.Flavor.String() + ")"
				}
				counts[k]++
			})
			if st.UDP == 0 {
				t.Fatal("no UDP datagrams in capture")
			}
			t.Logf("%d frames, %d UDP: %v", st.Frames, st.UDP, counts)
			for _, k := range []string{"DATA", "INFO", "CMD(FLUSH)", "NACK", "ACK"} {
				if counts[k] == 0 {
					t.Errorf("capture notes promise %s messages, found none", k)
				}
			}
		})
	}
}

// TestGoldenFields checks decoded values against what the capture notes and
// DESIGN.md say the reference sends, so a parser that round-trips bytes but
// reads fields from the wrong offsets still fails.
func TestGoldenFields(t *testing.T) {
	var (
		m                framing.Message
		sawInfo, sawData bool
		sawCC, sawRate   bool
		sawNackCC        bool
		sawSquelch       bool
	)
	forEachPayload(t, "normcast-sample.pcap", func(frame int, p []byte) {
		if err := m.Unmarshal(p); err != nil {
			t.Fatalf("frame %d: %v", frame, err)
		}
		switch m.Type {
		case framing.TypeInfo:
			sawInfo = true
			if string(m.Info.Content) != "sample200k.bin" {
				t.Errorf("NORM_INFO content %q, want the file name", m.Info.Content)
			}
			if m.Info.Flags&framing.FlagFile == 0 {
				t.Error("NORM_INFO of a file lacks FLAG_FILE")
			}
		case framing.TypeData:
			d := &m.Data
			f, ok, err := d.Ext.FTI(d.FECID)
			if err != nil || !ok {
				t.Fatalf("frame %d: NORM_DATA without EXT_FTI (ok=%v err=%v)", frame, ok, err)
			}
			if d.FECID != framing.FECRS8 || f.SymbolLength != 1400 || f.MaxBlockLen != 64 || f.Parity != 0 || f.TransferLength != 204800 {
				t.Errorf("frame %d: fec_id %d FTI %+v; want FEC id 5, segment 1400, block 64, parity 0, 204800 bytes", frame, d.FECID, f)
			}
			// 204800 bytes = 147 segments: 3 blocks of 49, the last segment 400 bytes.
			if d.PayloadID.Block > 2 || d.PayloadID.Symbol > 48 {
				t.Errorf("frame %d: payload id %+v outside 3 blocks of 49", frame, d.PayloadID)
			}
			want := 1400
			if d.PayloadID.Block == 2 && d.PayloadID.Symbol == 48 {
				want = 204800 - 146*1400
			}
			if len(d.Payload) != want {
				t.Errorf("frame %d: payload %d bytes, want %d", frame, len(d.Payload), want)
			}
			sawData = true
		case framing.TypeCmd:
			c := &m.Cmd
			switch c.Flavor {
			case framing.FlavorCC:
				sawCC = true
				if r, ok := c.Ext.Rate(); ok {
					sawRate = true
					if bps := framing.UnquantizeRate(r); bps <= 0 || bps > 1e9 {
						t.Errorf("frame %d: EXT_RATE %v B/s", frame, bps)
					}
				}
			case framing.FlavorSquelch:
				sawSquelch = true
			}
		case framing.TypeNack:
			if m.Nack.ServerID != 0x0a4d0001 {
				t.Errorf("frame %d: NACK for server %08x, want the sender 10.77.0.1's id", frame, m.Nack.ServerID)
			}
			if _, ok := m.Nack.Ext.CC(); ok {
				sawNackCC = true
			}
			n := 0
			for r, off, ok := framing.NextRepairRequest(m.Nack.Content, 0); ok; r, off, ok = framing.NextRepairRequest(m.Nack.Content, off) {
				for _, o, ok := r.Item(0, 0); ok; _, o, ok = r.Item(o, 0) {
					n++
				}
			}
			if n == 0 {
				t.Errorf("frame %d: NACK with no repair items", frame)
			}
		}
	})
	for what, saw := range map[string]bool{"INFO": sawInfo, "DATA": sawData, "CMD(CC)": sawCC, "EXT_RATE": sawRate, "NACK with EXT_CC": sawNackCC, "CMD(SQUELCH)": sawSquelch} {
		if !saw {
			t.Errorf("no %s in the capture", what)
		}
	}
}

// TestGoldenFECAck checks the parity, watermark and acking-node fields of the
// capture taken with parity and positive acknowledgement on.
func TestGoldenFECAck(t *testing.T) {
	var (
		m        framing.Message
		parity   int
		flushRef *framing.SymbolRef
		acks     = map[uint32]framing.SymbolRef{}
		ackers   = map[uint32]bool{}
	)
	forEachPayload(t, "normcast-sample-fec-ack.pcap", func(frame int, p []byte) {
		if err := m.Unmarshal(p); err != nil {
			t.Fatalf("frame %d: %v", frame, err)
		}
		switch m.Type {
		case framing.TypeData:
			f, _, _ := m.Data.Ext.FTI(m.Data.FECID)
			if f.Parity != 8 {
				t.Errorf("frame %d: FTI parity %d, want 8 (the reference writes the parity count)", frame, f.Parity)
			}
			if int(m.Data.PayloadID.Symbol) >= 49 { // blocks of 49 source symbols
				parity++
				if len(m.Data.Payload) != int(f.SymbolLength) {
					t.Errorf("frame %d: parity payload %d bytes, want a full segment", frame, len(m.Data.Payload))
				}
			}
		case framing.TypeCmd:
			if m.Cmd.Flavor == framing.FlavorFlush && m.Cmd.NodeCount() > 0 {
				ref := m.Cmd.Ref
				flushRef = &ref
				for i := range m.Cmd.NodeCount() {
					ackers[m.Cmd.Node(i)] = true
				}
			}
		case framing.TypeAck:
			if m.Ack.AckType != framing.AckFlush {
				return
			}
			w, err := m.Ack.Watermark(0)
			if err != nil {
				t.Fatalf("frame %d: %v", frame, err)
			}
			acks[m.Ack.SourceID] = w
		}
	})
	if parity < 6 {
		t.Errorf("%d parity symbols, want at least 2 per block for 3 blocks", parity)
	}
	if !ackers[0x0a4d0002] || !ackers[0x0a4d0003] {
		t.Errorf("acking node list %v lacks the two receivers", ackers)
	}
	if flushRef == nil || len(acks) != 2 {
		t.Fatalf("flush %v, acks %v: want a watermark flush answered by both receivers", flushRef, acks)
	}
	for id, w := range acks {
		if w != *flushRef {
			t.Errorf("receiver %08x acknowledged %+v, flush asked for %+v", id, w, *flushRef)
		}
	}
}
