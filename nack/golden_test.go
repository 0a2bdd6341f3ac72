package nack

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/capture"
)

// The reference captures (see framing/testdata/README.md): NRL NORM's file
// cast of a 204800-byte file in 1400-byte segments, three blocks of 49
// source symbols, to two receivers with 5% loss; the second capture with 8
// parity symbols per block (2 sent proactively).
var referenceCaptures = []struct {
	name   string
	parity int
}{
	{"normcast-sample.pcap", 0},
	{"normcast-sample-fec-ack.pcap", 8},
}

const refK, refBlocks = 49, 3

type refNack struct {
	frame   int
	src     string
	content []byte
}

func referenceNacks(t *testing.T, name string) []refNack {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "framing", "testdata", name))
	if err != nil {
		t.Skipf("reference capture not available: %v", err)
	}
	defer f.Close()
	var out []refNack
	_, err = capture.ReadUDP(f, func(d capture.Datagram) error {
		var n framing.Nack
		if n.Unmarshal(d.Payload) == nil {
			out = append(out, refNack{d.Frame, d.Src.Addr().String(), bytes.Clone(n.Content)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no NACKs in", name)
	}
	return out
}

// stateFor makes receiver state the reference implementation would have
// sent content for: the objects it requests whole are unknown, the blocks it
// requests symbols of are missing what makes the reference ask for exactly
// those ids, and every other block of object 0 is complete. It returns the
// missing objects and object 0.
func stateFor(t *testing.T, p *Pool, content []byte, parity int) (missing []uint16, o *Object) {
	t.Helper()
	o = newObject(t, p, 0, Layout{Blocks: refBlocks, MaxBlockLen: refK, Parity: parity})
	ids := map[uint32][]int{}
	for w := range wishes(t, content, 0) {
		switch w.level {
		case framing.RepairObject:
			missing = append(missing, w.obj)
		case framing.RepairSegment:
			if w.obj != 0 {
				t.Fatalf("request for object %d", w.obj)
			}
			ids[w.block] = append(ids[w.block], int(w.symbol))
		default:
			t.Fatalf("unexpected request %+v", w)
		}
	}
	for i := 1; i < len(missing); i++ { // serial order, as the receiver knows them
		for j := i; j > 0 && int16(missing[j]-missing[j-1]) < 0; j-- {
			missing[j], missing[j-1] = missing[j-1], missing[j]
		}
	}
	for b := uint32(0); b < refBlocks; b++ {
		req := ids[b]
		if len(req) == 0 {
			recv(t, o, b, refK, refK)
			continue
		}
		lo, hi := req[0], req[0]
		for _, s := range req {
			lo, hi = min(lo, s), max(hi, s)
		}
		if lo < refK {
			// Explicit source requests, no parity: exactly those are lost.
			if parity != 0 {
				t.Fatalf("source ids requested with parity: %v", req)
			}
			recv(t, o, b, refK, refK, req...)
			continue
		}
		// Parity requests: the reference asks for the parity ids in
		// [k, k+missing) it lacks, so hi-k+1 source symbols are lost and
		// the parity ids in that window it does not ask for arrived.
		lost := []int{}
		for s := 0; s <= hi-refK; s++ {
			lost = append(lost, s)
		}
		asked := map[int]bool{}
		for _, s := range req {
			asked[s] = true
		}
		for s := refK; s < refK+parity; s++ {
			if asked[s] || s > hi {
				lost = append(lost, s)
			}
		}
		recv(t, o, b, refK, refK+parity, lost...)
	}
	return missing, o
}

// TestReferenceNacks rebuilds every NACK of the reference captures from a
// receiver state that explains it: the content must ask for the same
// things, byte for byte where the reference does not split one run of
// requests over several headers, and shorter where it does.
func TestReferenceNacks(t *testing.T) {
	for _, rc := range referenceCaptures {
		for _, rn := range referenceNacks(t, rc.name) {
			p := NewPool(8, 256)
			missing, o := stateFor(t, p, rn.content, rc.parity)
			b, _ := NewBuilder(framing.FECRS8, 0, 256)
			b.Reset(nil, 1400)
			for _, id := range missing {
				b.AddMissingObject(id)
			}
			b.AddObject(o, true)
			got := b.Content()
			want := rn.content
			if g, w := describe(t, got, 0), describe(t, want, 0); !sameWishes(wishes(t, got, 0), wishes(t, want, 0)) {
				t.Errorf("%s #%d: asks for\n%s\nthe reference asked for\n%s", rc.name, rn.frame, g, w)
				continue
			}
			if mergeable(want) {
				if len(got) >= len(want) {
					t.Errorf("%s #%d: %d bytes, no shorter than the reference's %d", rc.name, rn.frame, len(got), len(want))
				}
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s #%d:\n got % x\nwant % x", rc.name, rn.frame, got, want)
			}
		}
	}
}

func sameWishes(a, b map[wish]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// mergeable reports whether content has two consecutive requests of the
// same form and flags, which a Builder writes as one.
func mergeable(content []byte) bool {
	var prev framing.RepairRequest
	for r, off, ok := framing.NextRepairRequest(content, 0); ok; r, off, ok = framing.NextRepairRequest(content, off) {
		if off > 4+len(r.Items) && r.Form == prev.Form && r.Flags == prev.Flags {
			return true
		}
		prev = r
	}
	return false
}

// TestReferenceSuppression replays the reference receivers' NACKs to each
// other: a receiver that overheard the other's NACK of the same repair
// cycle is suppressed exactly when that NACK asked for everything it needs.
func TestReferenceSuppression(t *testing.T) {
	nacks := referenceNacks(t, "normcast-sample-fec-ack.pcap")
	byFrame := map[int][]byte{}
	for _, n := range nacks {
		byFrame[n.frame] = n.content
	}
	tests := []struct {
		mine, heard int
		covered     bool
	}{
		{110, 111, true},  // both asked for parity 51 and 52 of block 1
		{111, 110, true},  //
		{165, 166, true},  // 51-53 is inside 50-53
		{166, 165, false}, // 50-53 is not inside 51-53
		{76, 73, true},    // 73 asked for the same parity and more
		{73, 76, false},   // 76 did not ask for the missing objects
	}
	for _, tc := range tests {
		if byFrame[tc.mine] == nil || byFrame[tc.heard] == nil {
			t.Fatalf("frames %d/%d are not NACKs", tc.mine, tc.heard)
		}
		p := NewPool(8, 256)
		missing, o := stateFor(t, p, byFrame[tc.mine], 8)
		s := NewSuppressor(16, 256)
		if err := s.Add(byFrame[tc.heard], 0); err != nil {
			t.Fatal(err)
		}
		covered := s.Covers(o, true)
		for _, id := range missing {
			covered = covered && s.CoversObject(id)
		}
		if covered != tc.covered {
			t.Errorf("mine #%d, heard #%d: covered %v, want %v", tc.mine, tc.heard, covered, tc.covered)
		}
	}
}

// TestReferenceAggregation merges the two receivers' NACKs of each repair
// cycle as a sender would: the union of their requests, and as erasure
// count the most either receiver needs.
func TestReferenceAggregation(t *testing.T) {
	nacks := referenceNacks(t, "normcast-sample-fec-ack.pcap")
	byFrame := map[int][]byte{}
	for _, n := range nacks {
		byFrame[n.frame] = n.content
	}
	a := NewAggregator(16, 256)
	for _, cycle := range []struct {
		frames []int
		want   string
	}{
		{[]int{110, 111}, "SEGMENT 0/1 {51 52} erasures 2"},
		{[]int{165, 166}, "SEGMENT 0/2 {50 51 52 53} erasures 4"},
		{[]int{73, 76}, "OBJECT 65529; OBJECT 65530; OBJECT 65531; OBJECT 65532; OBJECT 65533; OBJECT 65534; OBJECT 65535; SEGMENT 0/0 {51} erasures 1"},
	} {
		a.Reset(65000)
		for _, f := range cycle.frames {
			if err := a.Add(byFrame[f], 0); err != nil {
				t.Fatal(err)
			}
		}
		if got := planString(a); got != cycle.want {
			t.Errorf("frames %v: plan\n got %s\nwant %s", cycle.frames, got, cycle.want)
		}
	}
}
