package nack

import (
	"errors"
	"testing"

	"github.com/shoalnet/shoal/framing"
)

// content assembles repair requests by hand with framing's encoder. Each
// request is form, flags and items of obj/block/symbol triples.
type req struct {
	form  framing.RepairForm
	flags framing.RepairFlags
	items [][3]int
}

func content(t testing.TB, reqs ...req) []byte {
	t.Helper()
	var c []byte
	for _, r := range reqs {
		var items []framing.SymbolRef
		for _, it := range r.items {
			items = append(items, framing.SymbolRef{FECID: framing.FECRS8, ObjectID: uint16(it[0]),
				PayloadID: framing.PayloadID{Block: uint32(it[1]), Symbol: uint16(it[2])}})
		}
		var err error
		if c, err = framing.AppendRepairRequest(c, r.form, r.flags, 0, items); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

const (
	items    = framing.FormItems
	ranges   = framing.FormRanges
	erasures = framing.FormErasures
	seg      = framing.RepairSegment
	blk      = framing.RepairBlock
	obj      = framing.RepairObject
	info     = framing.RepairInfo
)

func TestSuppression(t *testing.T) {
	// The receiver: object 3 of 4 blocks of 10 symbols (+parity), block 0
	// complete, block 1 missing source 2 and 5, blocks 2 and 3 unseen.
	mine := func(t testing.TB, parity int, infoPending bool) *Object {
		o := newObject(t, NewPool(8, 64), 3, Layout{Blocks: 4, MaxBlockLen: 10, Parity: parity})
		recv(t, o, 0, 10, 10)
		recv(t, o, 1, 10, 10, 2, 5)
		o.SetInfoPending(infoPending)
		return o
	}
	tests := []struct {
		name    string
		parity  int
		info    bool
		flush   bool
		heard   [][]byte
		covered bool
	}{
		{name: "nothing heard", flush: true, covered: false},
		{name: "exactly my NACK", flush: true, covered: true, heard: [][]byte{content(t,
			req{items, seg, [][3]int{{3, 1, 2}, {3, 1, 5}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		{name: "a superset in two NACKs", flush: true, covered: true, heard: [][]byte{
			content(t, req{ranges, seg, [][3]int{{3, 1, 0}, {3, 1, 3}}}),
			content(t, req{items, seg, [][3]int{{3, 1, 5}}}, req{ranges, blk, [][3]int{{3, 0, 0}, {3, 3, 0}}})}},
		{name: "one symbol short", flush: true, covered: false, heard: [][]byte{content(t,
			req{items, seg, [][3]int{{3, 1, 2}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		{name: "one block short", flush: true, covered: false, heard: [][]byte{content(t,
			req{items, seg, [][3]int{{3, 1, 2}, {3, 1, 5}}},
			req{items, blk, [][3]int{{3, 2, 0}}})}},
		{name: "block ranges merge", flush: true, covered: true, heard: [][]byte{
			content(t, req{items, seg, [][3]int{{3, 1, 2}, {3, 1, 5}}}, req{items, blk, [][3]int{{3, 3, 0}}}),
			content(t, req{items, blk, [][3]int{{3, 2, 0}}})}},
		{name: "symbols of another object", flush: true, covered: false, heard: [][]byte{content(t,
			req{items, seg, [][3]int{{4, 1, 2}, {4, 1, 5}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		{name: "whole object", flush: true, covered: true, heard: [][]byte{content(t,
			req{ranges, obj, [][3]int{{1, 0, 0}, {5, 0, 0}}})}},
		{name: "without flush only up to what the sender sent", flush: false, covered: true, heard: [][]byte{content(t,
			req{items, seg, [][3]int{{3, 1, 2}, {3, 1, 5}}})}},
		{name: "NORM_INFO needed, not asked", info: true, flush: true, covered: false, heard: [][]byte{content(t,
			req{items, seg, [][3]int{{3, 1, 2}, {3, 1, 5}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		{name: "NORM_INFO needed, asked with the INFO flag", info: true, flush: true, covered: true, heard: [][]byte{content(t,
			req{items, seg | info, [][3]int{{3, 1, 2}, {3, 1, 5}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		{name: "NORM_INFO needed, asked alone", info: true, flush: true, covered: true, heard: [][]byte{
			content(t, req{items, seg, [][3]int{{3, 1, 2}, {3, 1, 5}}}, req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}}),
			content(t, req{ranges, info, [][3]int{{2, 0, 0}, {3, 0, 0}}})}},
		// With parity 4: I want the first 2 parity ids, 10 and 11.
		{name: "parity ids asked", parity: 4, flush: true, covered: true, heard: [][]byte{content(t,
			req{ranges, seg, [][3]int{{3, 1, 10}, {3, 1, 12}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		// A sender reads the number of ids as a count and sends that
		// many fresh parity symbols, whichever ids were named.
		{name: "as many other parity ids asked", parity: 4, flush: true, covered: true, heard: [][]byte{content(t,
			req{items, seg, [][3]int{{3, 1, 12}, {3, 1, 13}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		{name: "fewer other parity ids asked", parity: 4, flush: true, covered: false, heard: [][]byte{content(t,
			req{items, seg, [][3]int{{3, 1, 13}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		{name: "parity ids asked in two NACKs count apart", parity: 4, flush: true, covered: false, heard: [][]byte{
			content(t, req{items, seg, [][3]int{{3, 1, 12}}}, req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}}),
			content(t, req{items, seg, [][3]int{{3, 1, 13}}})}},
		{name: "erasure count enough", parity: 4, flush: true, covered: true, heard: [][]byte{content(t,
			req{erasures, seg, [][3]int{{3, 1, 3}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		{name: "erasure count exactly mine", parity: 4, flush: true, covered: true, heard: [][]byte{content(t,
			req{erasures, seg, [][3]int{{3, 1, 2}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		{name: "erasure count short", parity: 4, flush: true, covered: false, heard: [][]byte{content(t,
			req{erasures, seg, [][3]int{{3, 1, 1}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
		{name: "erasure count, sender without parity", parity: 0, flush: true, covered: false, heard: [][]byte{content(t,
			req{erasures, seg, [][3]int{{3, 1, 9}}},
			req{ranges, blk, [][3]int{{3, 2, 0}, {3, 3, 0}}})}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := mine(t, tc.parity, tc.info)
			s := NewSuppressor(16, 64)
			for _, c := range tc.heard {
				if err := s.Add(c, 0); err != nil {
					t.Fatal(err)
				}
			}
			if got := s.Covers(o, tc.flush); got != tc.covered {
				t.Fatalf("Covers = %v, want %v", got, tc.covered)
			}
			// What this receiver would send itself always covers it.
			b, _ := NewBuilder(framing.FECRS8, 0, 64)
			b.Reset(nil, 0)
			b.AddObject(o, tc.flush)
			s.Reset()
			if s.Covers(o, tc.flush) != (len(b.Content()) == 0) {
				t.Fatal("Reset did not forget")
			}
			if err := s.Add(b.Content(), 0); err != nil {
				t.Fatal(err)
			}
			if !s.Covers(o, tc.flush) {
				t.Fatalf("own NACK does not cover: %s", describe(t, b.Content(), 0))
			}
			b.Erasures = true
			b.Reset(nil, 0)
			b.AddObject(o, tc.flush)
			s.Reset()
			s.Add(b.Content(), 0)
			if !s.Covers(o, tc.flush) {
				t.Fatalf("own ERASURES NACK does not cover: %s", describe(t, b.Content(), 0))
			}
		})
	}
}

// TestSuppressionFreshParity: a count of parity symbols covers a receiver
// only while the sender can still have that many it has not sent, for the
// sender resends named ids once its fresh parity is used up.
func TestSuppressionFreshParity(t *testing.T) {
	// Another receiver asked for two parity ids of block 0 (k 10, parity
	// 4): the sender will send the next two it has not sent, or, once it
	// has none left, resend these two.
	heard := content(t, req{items, seg, [][3]int{{3, 0, 12}, {3, 0, 13}}})
	for _, tc := range []struct {
		name    string
		parity  []int // parity ids this receiver got; it lost 3 source symbols
		covered bool
	}{
		{"needs 3", nil, false},
		{"needs 2, parity 10 seen", []int{10}, true},
		{"needs 1, parity 11 and 12 seen", []int{11, 12}, true},
		{"needs 2, parity 12 seen: one fresh left", []int{12}, false},
		{"needs 2, parity 13 seen: none fresh", []int{13}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newObject(t, NewPool(2, 64), 3, Layout{Blocks: 1, MaxBlockLen: 10, Parity: 4})
			recv(t, o, 0, 10, 10, 2, 5, 7)
			for _, p := range tc.parity {
				o.Receive(0, uint16(p), 10)
			}
			s := NewSuppressor(4, 64)
			s.Add(heard, 0)
			if got := s.Covers(o, true); got != tc.covered {
				t.Fatalf("Covers = %v, want %v", got, tc.covered)
			}
			want := 0
			if !tc.covered {
				want = 3 - len(tc.parity)
			}
			if u := s.Uncovered(o, true); u != want {
				t.Fatalf("Uncovered = %d, want %d", u, want)
			}
		})
	}
}

func TestSuppressionObjects(t *testing.T) {
	s := NewSuppressor(4, 64)
	s.Add(content(t, req{ranges, obj, [][3]int{{65534, 0, 0}, {1, 0, 0}}}, req{items, obj | info, [][3]int{{9, 0, 0}}}), 0)
	for id, want := range map[uint16]bool{65533: false, 65534: true, 65535: true, 0: true, 1: true, 2: false, 9: true, 8: false} {
		if s.CoversObject(id) != want {
			t.Errorf("CoversObject(%d) = %v", id, !want)
		}
	}
	s2 := NewSuppressor(4, 64)
	s2.Add(content(t, req{items, info, [][3]int{{5, 0, 0}}}, req{items, obj, [][3]int{{7, 0, 0}}}), 0)
	for id, want := range map[uint16]bool{4: false, 5: true, 6: false, 7: true} {
		if s2.CoversInfo(id) != want {
			t.Errorf("CoversInfo(%d) = %v", id, !want)
		}
	}
	// An object wanted whole covers the NORM_INFO too.
	o := newObject(t, NewPool(1, 64), 0, Layout{Blocks: 1, MaxBlockLen: 4})
	o.SetInfoPending(true)
	if !s.Covers(o, true) {
		t.Error("object requested whole does not cover its NORM_INFO")
	}
}

// TestSuppressionRepairAdv feeds a sender's CMD(REPAIR_ADV) through the
// framing codec, as a receiver gets it.
func TestSuppressionRepairAdv(t *testing.T) {
	cmd := framing.Cmd{Flavor: framing.FlavorRepairAdv,
		Content: content(t, req{ranges, seg, [][3]int{{3, 1, 0}, {3, 1, 9}}})}
	pkt, err := cmd.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got framing.Cmd
	if err := got.Unmarshal(pkt); err != nil {
		t.Fatal(err)
	}
	o := newObject(t, NewPool(1, 64), 3, Layout{Blocks: 2, MaxBlockLen: 10})
	recv(t, o, 0, 10, 10)
	recv(t, o, 1, 10, 10, 4, 7)
	s := NewSuppressor(4, 64)
	if err := s.Add(got.Content, got.FECM); err != nil {
		t.Fatal(err)
	}
	if !s.Covers(o, true) {
		t.Fatal("advertised repair does not cover")
	}
}

func TestSuppressionOverflow(t *testing.T) {
	// A Suppressor with room for one block forgets the second: less
	// suppression, never wrong suppression.
	s := NewSuppressor(1, 64)
	s.Add(content(t, req{items, seg, [][3]int{{3, 0, 1}, {3, 1, 1}}}), 0)
	o := newObject(t, NewPool(2, 64), 3, Layout{Blocks: 2, MaxBlockLen: 4})
	recv(t, o, 0, 4, 4, 1)
	recv(t, o, 1, 4, 4, 1)
	if s.Covers(o, true) {
		t.Fatal("covered by a request that did not fit")
	}
	// Symbol ids beyond the table's width are not remembered either.
	s = NewSuppressor(4, 8)
	if err := s.Add(content(t, req{items, seg, [][3]int{{3, 0, 9}}}), 0); !errors.Is(err, framing.ErrContent) {
		t.Fatalf("symbol beyond the table: %v", err)
	}
}

func TestSuppressionMalformed(t *testing.T) {
	good := content(t, req{items, seg, [][3]int{{3, 0, 1}}})
	o := newObject(t, NewPool(1, 64), 3, Layout{Blocks: 1, MaxBlockLen: 4})
	recv(t, o, 0, 4, 4, 1)
	for name, c := range map[string][]byte{
		"truncated tail":     append(append([]byte{}, good...), 1, 1),
		"bad form":           append(append([]byte{}, good...), content(t, req{items, seg, nil})[:2]...),
		"unknown form first": append([]byte{9, 1, 0, 0}, good...),
		"no level flag":      append(content(t, req{items, 0, [][3]int{{3, 0, 2}}}), good...),
		"range across blocks": append(content(t, req{ranges, seg, [][3]int{{3, 0, 2}, {3, 1, 3}}}),
			good...),
		"reversed range": append(content(t, req{ranges, seg, [][3]int{{3, 0, 3}, {3, 0, 2}}}), good...),
	} {
		s := NewSuppressor(4, 64)
		err := s.Add(c, 0)
		if !errors.Is(err, framing.ErrContent) {
			t.Errorf("%s: error %v", name, err)
		}
		if !s.Covers(o, true) {
			t.Errorf("%s: the well-formed request was dropped", name)
		}
	}
}
