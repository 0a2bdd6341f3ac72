package receiver

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/capture"
)

// senderPackets returns the reference sender's packets in a capture.
func senderPackets(t *testing.T, name string) [][]byte {
	t.Helper()
	f, err := os.Open("../framing/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	_, err = capture.ReadUDP(f, func(d capture.Datagram) error {
		if h, _, err := framing.Peek(d.Payload); err == nil && h.SourceID == 0x0a4d0001 {
			out = append(out, bytes.Clone(d.Payload))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// receiveFrom feeds packets to a fresh receiver and returns the completed
// file and its name.
func receiveFrom(t *testing.T, pkts [][]byte, keep func(framing.Data) bool) ([]byte, string) {
	t.Helper()
	r := newRx(t, Config{})
	var m framing.Message
	var data []byte
	var name string
	now := t0
	for _, p := range pkts {
		if m.Unmarshal(p) == nil && m.Type == framing.TypeData && !keep(m.Data) {
			continue
		}
		_ = r.HandlePacket(now, from, p)
		now = now.Add(time.Millisecond)
		for _, e := range r.Events() {
			switch e.Kind {
			case EventCompleted:
				data, name = e.Data, string(e.Info)
			case EventAborted:
				t.Fatalf("object aborted: %v", e.Err)
			}
		}
	}
	return data, name
}

// TestReferenceSender receives the file the reference implementation's
// file-cast tool sent in the shared captures: from the source symbols as
// captured, and again with source symbols removed wherever the reference
// sent parity, so that its parity must rebuild them byte for byte.
func TestReferenceSender(t *testing.T) {
	all := senderPackets(t, "normcast-sample-fec-ack.pcap")
	full, name := receiveFrom(t, all, func(framing.Data) bool { return true })
	if name != "sample200k.bin" || len(full) != 204800 {
		t.Fatalf("got %q, %d bytes; want sample200k.bin, 204800 bytes", name, len(full))
	}
	// Count the parity symbols the reference sent per block, then drop as
	// many source symbols of that block (the first ones).
	parity := map[uint32]int{}
	for _, p := range all {
		var d framing.Data
		if d.Unmarshal(p) == nil && d.PayloadID.Symbol >= 49 {
			parity[d.PayloadID.Block]++
		}
	}
	if len(parity) == 0 {
		t.Fatal("no parity in the capture")
	}
	rebuilt, _ := receiveFrom(t, all, func(d framing.Data) bool {
		return int(d.PayloadID.Symbol) >= parity[d.PayloadID.Block] // drop source ids below the parity count
	})
	if !bytes.Equal(rebuilt, full) {
		t.Fatal("the reference's parity did not rebuild the dropped source symbols exactly")
	}
	// The capture without parity: the plain file.
	plain, _ := receiveFrom(t, senderPackets(t, "normcast-sample.pcap"), func(framing.Data) bool { return true })
	if len(plain) != 204800 {
		t.Fatalf("plain capture: %d bytes", len(plain))
	}
}
