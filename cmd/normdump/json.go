package main

import (
	"fmt"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/capture"
)

// jsonMsg is the --json form of one message. Pointer fields are omitted when
// a message type has no such field (object 0 is still printed).
type jsonMsg struct {
	Frame      int       `json:"frame"`
	Time       string    `json:"time"`
	Src        string    `json:"src"`
	Dst        string    `json:"dst"`
	Type       string    `json:"type"`
	Flavor     string    `json:"flavor,omitempty"`
	SourceID   uint32    `json:"source_id"`
	InstanceID *uint16   `json:"instance_id,omitempty"`
	Sequence   uint16    `json:"sequence"`
	ServerID   *uint32   `json:"server_id,omitempty"`
	GRTT       *float64  `json:"grtt_s,omitempty"`
	Backoff    *uint8    `json:"backoff,omitempty"`
	GroupSize  *float64  `json:"group_size,omitempty"`
	Flags      string    `json:"flags,omitempty"`
	Object     *uint16   `json:"object,omitempty"`
	FECID      *uint8    `json:"fec_id,omitempty"`
	Block      *uint32   `json:"block,omitempty"`
	Symbol     *uint16   `json:"symbol,omitempty"`
	BlockLen   *uint16   `json:"block_len,omitempty"`
	Length     *int      `json:"length,omitempty"`
	Ext        []string  `json:"ext,omitempty"`
	CCSequence *uint16   `json:"cc_sequence,omitempty"`
	SendTime   string    `json:"send_time,omitempty"`
	GRTTResp   string    `json:"grtt_response,omitempty"`
	AckID      *uint8    `json:"ack_id,omitempty"`
	AckType    string    `json:"ack_type,omitempty"`
	Nodes      []string  `json:"nodes,omitempty"`
	CCNodes    []jsonCC  `json:"cc_nodes,omitempty"`
	Squelched  []uint16  `json:"squelched,omitempty"`
	Repair     []jsonReq `json:"repair,omitempty"`
	Watermark  *jsonRef  `json:"watermark,omitempty"`
	Content    string    `json:"content,omitempty"`
}

type jsonRef struct {
	FECID    uint8  `json:"fec_id"`
	Object   uint16 `json:"object"`
	Block    uint32 `json:"block"`
	Symbol   uint16 `json:"symbol"`
	BlockLen uint16 `json:"block_len,omitempty"`
}

type jsonReq struct {
	Form  string    `json:"form"`
	Flags string    `json:"flags"`
	Items []jsonRef `json:"items"`
}

type jsonCC struct {
	Node  string  `json:"node"`
	Flags string  `json:"flags"`
	RTT   float64 `json:"rtt_s"`
	Rate  float64 `json:"rate_bps"`
}

func ptr[T any](v T) *T { return &v }

func ref(r framing.SymbolRef) jsonRef {
	return jsonRef{FECID: r.FECID, Object: r.ObjectID, Block: r.PayloadID.Block, Symbol: r.PayloadID.Symbol, BlockLen: r.PayloadID.BlockLen}
}

func (j *jsonMsg) sender(s framing.SenderFields) {
	j.InstanceID = ptr(s.InstanceID)
	j.GRTT = ptr(framing.UnquantizeRTT(s.GRTT).Seconds())
	j.Backoff = ptr(s.Backoff)
	j.GroupSize = ptr(framing.UnquantizeGroupSize(s.GroupSize))
}

func (j *jsonMsg) ext(e framing.Extensions, fecID uint8) {
	j.Ext = extParts(e, fecID)
}

func repairJSON(content []byte, m uint8) []jsonReq {
	var out []jsonReq
	for r, off, ok := framing.NextRepairRequest(content, 0); ok; r, off, ok = framing.NextRepairRequest(content, off) {
		q := jsonReq{Form: r.Form.String(), Flags: repairFlagNames(r.Flags), Items: []jsonRef{}}
		for s, o, ok := r.Item(0, m); ok; s, o, ok = r.Item(o, m) {
			q.Items = append(q.Items, ref(s))
		}
		out = append(out, q)
	}
	return out
}

func toJSON(d capture.Datagram, m *framing.Message) jsonMsg {
	h := m.Header()
	j := jsonMsg{
		Frame: d.Frame, Time: d.Time.UTC().Format("2006-01-02T15:04:05.000000Z"),
		Src: d.Src.String(), Dst: d.Dst.String(),
		Type: m.Type.String(), SourceID: h.SourceID, Sequence: h.Sequence,
	}
	switch m.Type {
	case framing.TypeInfo:
		i := &m.Info
		j.sender(i.SenderFields)
		j.Flags, j.Object, j.FECID = flagNames(i.Flags), ptr(i.ObjectID), ptr(i.FECID)
		j.ext(i.Ext, i.FECID)
		j.Content = string(i.Content)
	case framing.TypeData:
		x := &m.Data
		j.sender(x.SenderFields)
		j.Flags, j.Object, j.FECID = flagNames(x.Flags), ptr(x.ObjectID), ptr(x.FECID)
		j.Block, j.Symbol, j.Length = ptr(x.PayloadID.Block), ptr(x.PayloadID.Symbol), ptr(len(x.Payload))
		if x.FECID == framing.FECSmallBlock {
			j.BlockLen = ptr(x.PayloadID.BlockLen)
		}
		j.ext(x.Ext, x.FECID)
	case framing.TypeCmd:
		c := &m.Cmd
		j.Flavor = c.Flavor.String()
		j.sender(c.SenderFields)
		j.ext(c.Ext, c.Ref.FECID)
		switch c.Flavor {
		case framing.FlavorFlush, framing.FlavorSquelch:
			j.Object, j.FECID = ptr(c.Ref.ObjectID), ptr(c.Ref.FECID)
			j.Block, j.Symbol = ptr(c.Ref.PayloadID.Block), ptr(c.Ref.PayloadID.Symbol)
			if c.Flavor == framing.FlavorSquelch {
				for i := range c.SquelchCount() {
					j.Squelched = append(j.Squelched, c.SquelchedObject(i))
				}
			}
		case framing.FlavorCC:
			j.CCSequence = ptr(c.CCSequence)
			j.SendTime = fmt.Sprintf("%d.%06d", c.SendTime.Sec, c.SendTime.Usec)
			for i := range c.CCNodeCount() {
				n := c.CCNode(i)
				j.CCNodes = append(j.CCNodes, jsonCC{Node: fmt.Sprintf("%08x", n.NodeID), Flags: ccFlagNames(n.Flags),
					RTT: framing.UnquantizeRTT(n.RTT).Seconds(), Rate: framing.UnquantizeRate(n.Rate)})
			}
		case framing.FlavorRepairAdv:
			j.Repair = repairJSON(c.Content, c.FECM)
		case framing.FlavorAckReq:
			j.AckType, j.AckID = c.AckType.String(), ptr(c.AckID)
		case framing.FlavorApplication:
			j.Content = string(c.Content)
		}
		if c.Flavor == framing.FlavorFlush || c.Flavor == framing.FlavorAckReq {
			for i := range c.NodeCount() {
				j.Nodes = append(j.Nodes, fmt.Sprintf("%08x", c.Node(i)))
			}
		}
	case framing.TypeNack:
		n := &m.Nack
		j.ServerID, j.InstanceID = ptr(n.ServerID), ptr(n.InstanceID)
		j.GRTTResp = fmt.Sprintf("%d.%06d", n.GRTTResponse.Sec, n.GRTTResponse.Usec)
		j.ext(n.Ext, 0)
		j.Repair = repairJSON(n.Content, n.FECM)
	case framing.TypeAck:
		a := &m.Ack
		j.Flavor = a.AckType.String()
		j.ServerID, j.InstanceID, j.AckID = ptr(a.ServerID), ptr(a.InstanceID), ptr(a.AckID)
		j.GRTTResp = fmt.Sprintf("%d.%06d", a.GRTTResponse.Sec, a.GRTTResponse.Usec)
		j.ext(a.Ext, 0)
		if a.AckType == framing.AckFlush {
			if w, err := a.Watermark(0); err == nil {
				j.Watermark = ptr(ref(w))
			}
		} else if len(a.Payload) > 0 {
			j.Content = string(a.Payload)
		}
	case framing.TypeReport:
		j.Content = string(m.Report.Content)
	}
	return j
}
