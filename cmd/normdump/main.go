// Command normdump prints the NORM (RFC 5740) messages in a packet capture,
// for debugging Shoal and other NORM implementations on the wire.
//
//	normdump [--json | --summary] FILE...
//
// FILE is a pcap or pcapng capture. By default normdump prints one line per
// NORM message with every decoded field; --json prints one JSON object per
// message instead; --summary prints how many messages of each type (and of
// each CMD and ACK flavor) the captures hold, as "TYPE COUNT" lines. UDP
// datagrams that do not parse as NORM are counted and reported, not fatal.
// A file that cannot be read is an error and a non-zero exit status.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/capture"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// counts tallies messages by type and flavor, plus what was not NORM.
type counts struct {
	byKind  map[string]int
	notNORM int
	nonUDP  int
	frags   int
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("normdump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per message")
	summary := fs.Bool("summary", false, "print message counts per type and flavor only")
	verbose := fs.Bool("v", false, "with the default output, also print why non-NORM datagrams did not parse")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: normdump [--json | --summary] FILE.pcap|FILE.pcapng ...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 || (*asJSON && *summary) {
		fs.Usage()
		return 2
	}
	c := counts{byKind: map[string]int{}}
	enc := json.NewEncoder(stdout)
	var m framing.Message
	for _, path := range fs.Args() {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintf(stderr, "normdump: %v\n", err)
			return 1
		}
		st, err := capture.ReadUDP(f, func(d capture.Datagram) error {
			if err := m.Unmarshal(d.Payload); err != nil {
				c.notNORM++
				if *verbose && !*summary && !*asJSON {
					fmt.Fprintf(stdout, "#%d %v > %v not NORM: %v\n", d.Frame, d.Src, d.Dst, err)
				}
				return nil
			}
			c.byKind[m.Type.String()]++
			if k := kind(&m); k != m.Type.String() {
				c.byKind[k]++
			}
			switch {
			case *summary:
			case *asJSON:
				return enc.Encode(toJSON(d, &m))
			default:
				_, err := fmt.Fprintf(stdout, "#%d %s %v > %v %s\n", d.Frame, d.Time.UTC().Format("15:04:05.000000"), d.Src, d.Dst, describe(&m))
				return err
			}
			return nil
		})
		f.Close()
		c.nonUDP += st.NonUDP
		c.frags += st.Fragments
		if err != nil {
			fmt.Fprintf(stderr, "normdump: %s: %v\n", path, err)
			return 1
		}
	}
	if *summary {
		keys := make([]string, 0, len(c.byKind))
		for k := range c.byKind {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(stdout, "%s %d\n", k, c.byKind[k])
		}
		fmt.Fprintf(stdout, "NOT-NORM %d\n", c.notNORM)
	}
	if c.notNORM+c.nonUDP+c.frags > 0 {
		fmt.Fprintf(stderr, "normdump: skipped %d UDP datagrams that are not NORM, %d frames that are not UDP, %d IP fragments\n",
			c.notNORM, c.nonUDP, c.frags)
	}
	return 0
}

// kind is the type with its CMD or ACK flavor, e.g. "CMD(FLUSH)".
func kind(m *framing.Message) string {
	switch m.Type {
	case framing.TypeCmd:
		return "CMD(" + m.Cmd.Flavor.String() + ")"
	case framing.TypeAck:
		return "ACK(" + m.Ack.AckType.String() + ")"
	}
	return m.Type.String()
}

// bitNames names the bits set in v, lowest first ("0" if none).
func bitNames(v uint8, names [8]string) string {
	var out []string
	for i, n := range names {
		if v&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "0"
	}
	return strings.Join(out, "|")
}

func flagNames(f framing.ObjectFlags) string {
	return bitNames(uint8(f), [8]string{"REPAIR", "EXPLICIT", "INFO", "UNRELIABLE", "FILE", "STREAM", "SYN", "0x80"})
}

func ccFlagNames(f framing.CCFlags) string {
	return bitNames(uint8(f), [8]string{"CLR", "PLR", "RTT", "START", "LEAVE", "LIMIT", "0x40", "0x80"})
}

func repairFlagNames(f framing.RepairFlags) string {
	return bitNames(uint8(f), [8]string{"SEGMENT", "BLOCK", "INFO", "OBJECT", "0x10", "0x20", "0x40", "0x80"})
}

func senderText(s framing.SenderFields) string {
	return fmt.Sprintf("inst=%d grtt=%v backoff=%d gsize=%g", s.InstanceID,
		framing.UnquantizeRTT(s.GRTT), s.Backoff, framing.UnquantizeGroupSize(s.GroupSize))
}

func refText(r framing.SymbolRef) string {
	s := fmt.Sprintf("fec=%d obj=%d block=%d sym=%d", r.FECID, r.ObjectID, r.PayloadID.Block, r.PayloadID.Symbol)
	if r.FECID == framing.FECSmallBlock {
		s += fmt.Sprintf(" blocklen=%d", r.PayloadID.BlockLen)
	}
	return s
}

// extParts describes each header extension; fecID selects the EXT_FTI layout.
func extParts(e framing.Extensions, fecID uint8) []string {
	var parts []string
	for x, off, ok := e.Next(0); ok; x, off, ok = e.Next(off) {
		switch x.Type {
		case framing.ExtFTI:
			f, _, err := e.FTI(fecID)
			if err != nil {
				parts = append(parts, fmt.Sprintf("FTI(%v)", err))
				continue
			}
			s := fmt.Sprintf("FTI size=%d seg=%d k=%d p=%d", f.TransferLength, f.SymbolLength, f.MaxBlockLen, f.Parity)
			switch fecID {
			case framing.FECRS:
				s += fmt.Sprintf(" m=%d g=%d", f.M, f.G)
			case framing.FECSmallBlock:
				s += fmt.Sprintf(" fec_inst=%d", f.InstanceID)
			}
			parts = append(parts, s)
		case framing.ExtCC:
			c, _ := e.CC()
			parts = append(parts, fmt.Sprintf("CC seq=%d flags=%s rtt=%v loss=%.6f rate=%.0fB/s", c.Sequence, ccFlagNames(c.Flags),
				framing.UnquantizeRTT(c.RTT), framing.UnquantizeLoss32(c.Loss32()), framing.UnquantizeRate(c.Rate)))
		case framing.ExtRate:
			r, _ := e.Rate()
			parts = append(parts, fmt.Sprintf("RATE %.0fB/s", framing.UnquantizeRate(r)))
		default:
			parts = append(parts, fmt.Sprintf("EXT%d % x", x.Type, x.Body()))
		}
	}
	return parts
}

func extText(e framing.Extensions, fecID uint8) string {
	if len(e) == 0 {
		return ""
	}
	return " ext=[" + strings.Join(extParts(e, fecID), "; ") + "]"
}

func repairText(content []byte, m uint8) string {
	var reqs []string
	for r, off, ok := framing.NextRepairRequest(content, 0); ok; r, off, ok = framing.NextRepairRequest(content, off) {
		var items []string
		for s, o, ok := r.Item(0, m); ok; s, o, ok = r.Item(o, m) {
			items = append(items, refText(s))
		}
		sep := ", "
		if r.Form == framing.FormRanges {
			sep = " .. "
		}
		reqs = append(reqs, fmt.Sprintf("%v %s {%s}", r.Form, repairFlagNames(r.Flags), strings.Join(items, sep)))
	}
	return " repair=[" + strings.Join(reqs, "; ") + "]"
}

// describe renders every decoded field of a message on one line.
func describe(m *framing.Message) string {
	h := m.Header()
	s := fmt.Sprintf("%s seq=%d src=%08x", kind(m), h.Sequence, h.SourceID)
	switch m.Type {
	case framing.TypeInfo:
		i := &m.Info
		s += fmt.Sprintf(" %s flags=%s fec=%d obj=%d", senderText(i.SenderFields), flagNames(i.Flags), i.FECID, i.ObjectID)
		s += extText(i.Ext, i.FECID) + fmt.Sprintf(" info=%q", i.Content)
	case framing.TypeData:
		d := &m.Data
		s += fmt.Sprintf(" %s flags=%s fec=%d obj=%d block=%d sym=%d", senderText(d.SenderFields), flagNames(d.Flags),
			d.FECID, d.ObjectID, d.PayloadID.Block, d.PayloadID.Symbol)
		if d.FECID == framing.FECSmallBlock {
			s += fmt.Sprintf(" blocklen=%d", d.PayloadID.BlockLen)
		}
		s += extText(d.Ext, d.FECID) + fmt.Sprintf(" len=%d", len(d.Payload))
	case framing.TypeCmd:
		c := &m.Cmd
		s += " " + senderText(c.SenderFields)
		switch c.Flavor {
		case framing.FlavorFlush, framing.FlavorSquelch:
			s += " " + refText(c.Ref)
		case framing.FlavorCC:
			s += fmt.Sprintf(" cc_seq=%d send_time=%d.%06d syn=%v", c.CCSequence, c.SendTime.Sec, c.SendTime.Usec, c.Syn)
		case framing.FlavorRepairAdv:
			s += fmt.Sprintf(" adv_flags=%#x", c.AdvFlags)
		case framing.FlavorAckReq:
			s += fmt.Sprintf(" ack_type=%v ack_id=%d", c.AckType, c.AckID)
		}
		s += extText(c.Ext, c.Ref.FECID)
		switch c.Flavor {
		case framing.FlavorFlush, framing.FlavorAckReq:
			if c.NodeCount() > 0 {
				ids := make([]string, c.NodeCount())
				for i := range ids {
					ids[i] = fmt.Sprintf("%08x", c.Node(i))
				}
				s += " acking=[" + strings.Join(ids, " ") + "]"
			}
		case framing.FlavorSquelch:
			ids := make([]string, c.SquelchCount())
			for i := range ids {
				ids[i] = fmt.Sprint(c.SquelchedObject(i))
			}
			s += " invalid=[" + strings.Join(ids, " ") + "]"
		case framing.FlavorCC:
			nodes := make([]string, c.CCNodeCount())
			for i := range nodes {
				n := c.CCNode(i)
				nodes[i] = fmt.Sprintf("%08x %s rtt=%v rate=%.0fB/s", n.NodeID, ccFlagNames(n.Flags), framing.UnquantizeRTT(n.RTT), framing.UnquantizeRate(n.Rate))
			}
			s += " cc_nodes=[" + strings.Join(nodes, "; ") + "]"
		case framing.FlavorRepairAdv:
			s += repairText(c.Content, c.FECM)
		case framing.FlavorApplication:
			s += fmt.Sprintf(" content=%q", c.Content)
		}
	case framing.TypeNack:
		n := &m.Nack
		s += fmt.Sprintf(" server=%08x inst=%d grtt_resp=%d.%06d", n.ServerID, n.InstanceID, n.GRTTResponse.Sec, n.GRTTResponse.Usec)
		s += extText(n.Ext, 0) + repairText(n.Content, n.FECM)
	case framing.TypeAck:
		a := &m.Ack
		s += fmt.Sprintf(" server=%08x inst=%d ack_id=%d grtt_resp=%d.%06d", a.ServerID, a.InstanceID, a.AckID, a.GRTTResponse.Sec, a.GRTTResponse.Usec)
		s += extText(a.Ext, 0)
		switch {
		case a.AckType == framing.AckFlush:
			if w, err := a.Watermark(0); err == nil {
				s += " watermark=[" + refText(w) + "]"
			}
		case len(a.Payload) > 0:
			s += fmt.Sprintf(" payload=%q", a.Payload)
		}
	case framing.TypeReport:
		s += fmt.Sprintf(" header=% x content=%q", m.Report.HeaderRest, m.Report.Content)
	}
	return s
}
