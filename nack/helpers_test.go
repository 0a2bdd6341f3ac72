package nack

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shoalnet/shoal/framing"
)

// describe renders repair content as
// "FORM LEVEL|FLAGS obj/block/sym ...; ...", ranges as "a-b", decoding it
// with framing's iterators only.
func describe(t testing.TB, content []byte, fecM uint8) string {
	t.Helper()
	var reqs []string
	off := 0
	for off < len(content) {
		r, next, ok := framing.NextRepairRequest(content, off)
		if !ok {
			t.Fatalf("malformed request at %d: % x", off, content)
		}
		var items []string
		for i := 0; i < len(r.Items); {
			s, j, ok := r.Item(i, fecM)
			if !ok {
				t.Fatalf("malformed item in % x", content)
			}
			txt := refString(s)
			if r.Form == framing.FormRanges {
				e, j2, ok := r.Item(j, fecM)
				if !ok {
					t.Fatalf("odd range in % x", content)
				}
				txt += "-" + refString(e)
				j = j2
			}
			items = append(items, txt)
			i = j
		}
		reqs = append(reqs, r.Form.String()+" "+flagString(r.Flags)+" "+strings.Join(items, " "))
		off = next
	}
	return strings.Join(reqs, "; ")
}

// refString is "obj/block/symbol", with "(n)" for a source block length
// on the wire (FEC id 129).
func refString(s framing.SymbolRef) string {
	txt := fmt.Sprintf("%d/%d/%d", s.ObjectID, s.PayloadID.Block, s.PayloadID.Symbol)
	if s.PayloadID.BlockLen != 0 {
		txt += fmt.Sprintf("(%d)", s.PayloadID.BlockLen)
	}
	return txt
}

func flagString(f framing.RepairFlags) string {
	var s []string
	for _, x := range []struct {
		f framing.RepairFlags
		n string
	}{{framing.RepairSegment, "SEGMENT"}, {framing.RepairBlock, "BLOCK"}, {framing.RepairObject, "OBJECT"}, {framing.RepairInfo, "INFO"}} {
		if f&x.f != 0 {
			s = append(s, x.n)
		}
	}
	return strings.Join(s, "|")
}

// wish is one thing a NACK asks for, with ranges expanded.
type wish struct {
	level  framing.RepairFlags // RepairSegment/Block/Object/Info, or 0xff for an erasure count
	obj    uint16
	block  uint32
	symbol uint16
}

// wishes expands repair content into the set of single things it asks for:
// symbols, blocks, objects, NORM_INFOs and erasure counts.
func wishes(t testing.TB, content []byte, fecM uint8) map[wish]int {
	t.Helper()
	out := map[wish]int{}
	for r, off, ok := framing.NextRepairRequest(content, 0); ok; r, off, ok = framing.NextRepairRequest(content, off) {
		for i := 0; i < len(r.Items); {
			a, j, ok := r.Item(i, fecM)
			if !ok {
				t.Fatalf("malformed item")
			}
			b := a
			if r.Form == framing.FormRanges {
				b, j, _ = r.Item(j, fecM)
			}
			i = j
			if r.Flags&framing.RepairInfo != 0 {
				for o := a.ObjectID; ; o++ {
					out[wish{level: framing.RepairInfo, obj: o}]++
					if o == b.ObjectID {
						break
					}
				}
			}
			switch {
			case r.Flags&framing.RepairSegment != 0 && r.Form == framing.FormErasures:
				out[wish{level: 0xff, obj: a.ObjectID, block: a.PayloadID.Block, symbol: a.PayloadID.Symbol}]++
			case r.Flags&framing.RepairSegment != 0:
				for s := int(a.PayloadID.Symbol); s <= int(b.PayloadID.Symbol); s++ {
					out[wish{level: framing.RepairSegment, obj: a.ObjectID, block: a.PayloadID.Block, symbol: uint16(s)}]++
				}
			case r.Flags&framing.RepairBlock != 0:
				for blk := a.PayloadID.Block; blk <= b.PayloadID.Block; blk++ {
					out[wish{level: framing.RepairBlock, obj: a.ObjectID, block: blk}]++
				}
			case r.Flags&framing.RepairObject != 0:
				for o := a.ObjectID; ; o++ {
					out[wish{level: framing.RepairObject, obj: o}]++
					if o == b.ObjectID {
						break
					}
				}
			}
		}
	}
	return out
}

// planString renders an Aggregator's plan as "LEVEL ...; ...".
func planString(a *Aggregator) string {
	var out []string
	for p := a.Plan(); p.Next(); {
		r := p.Repair()
		switch r.Level {
		case framing.RepairObject:
			out = append(out, fmt.Sprintf("OBJECT %d", r.Object))
		case framing.RepairInfo:
			out = append(out, fmt.Sprintf("INFO %d", r.Object))
		case framing.RepairBlock:
			out = append(out, fmt.Sprintf("BLOCK %d/%d-%d", r.Object, r.Block, r.LastBlock))
		case framing.RepairSegment:
			var syms []string
			for s := r.Symbols.FirstSet(); s >= 0; s = r.Symbols.NextSet(s + 1) {
				syms = append(syms, fmt.Sprint(s))
			}
			out = append(out, fmt.Sprintf("SEGMENT %d/%d {%s} erasures %d", r.Object, r.Block, strings.Join(syms, " "), r.Erasures))
		default:
			out = append(out, fmt.Sprintf("LEVEL(%d)", r.Level))
		}
	}
	return strings.Join(out, "; ")
}
