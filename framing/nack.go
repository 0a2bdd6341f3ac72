package framing

import (
	"encoding/binary"
	"strconv"
)

// RepairForm says how the items of a repair request are to be read
// (RFC 5740 §4.3.1).
type RepairForm uint8

// Repair request forms.
const (
	FormItems    RepairForm = 1 // each item names one missing symbol/block/object
	FormRanges   RepairForm = 2 // items come in pairs: first and last of a range
	FormErasures RepairForm = 3 // each item carries an erasure count in Symbol
)

var formNames = [...]string{"INVALID", "ITEMS", "RANGES", "ERASURES"}

// String returns "ITEMS", "RANGES" or "ERASURES".
func (f RepairForm) String() string {
	if int(f) < len(formNames) {
		return formNames[f]
	}
	return "FORM(" + strconv.Itoa(int(f)) + ")"
}

// RepairFlags say at which level a repair request asks for repair.
type RepairFlags uint8

// Repair levels.
const (
	RepairSegment RepairFlags = 0x01 // individual symbols
	RepairBlock   RepairFlags = 0x02 // whole blocks
	RepairInfo    RepairFlags = 0x04 // the object's NORM_INFO
	RepairObject  RepairFlags = 0x08 // whole objects
)

// RepairRequest is one repair request of a NORM_NACK or CMD(REPAIR_ADV): a
// form, level flags and a list of items in wire form (read them with Item).
type RepairRequest struct {
	Form  RepairForm
	Flags RepairFlags
	Items []byte
}

const repairHeaderLen = 4

// NextRepairRequest returns the repair request at offset off of a NACK or
// REPAIR_ADV content area and the offset of the next one; ok is false at the
// end or if the rest is malformed (content parsed by Unmarshal has been
// checked). Use it as:
//
//	for r, off, ok := framing.NextRepairRequest(c, 0); ok; r, off, ok = framing.NextRepairRequest(c, off) { ... }
func NextRepairRequest(content []byte, off int) (r RepairRequest, next int, ok bool) {
	if off < 0 || len(content)-off < repairHeaderLen {
		return r, off, false
	}
	b := content[off:]
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n > len(b)-repairHeaderLen {
		return r, off, false
	}
	return RepairRequest{Form: RepairForm(b[0]), Flags: RepairFlags(b[1]), Items: b[repairHeaderLen : repairHeaderLen+n]},
		off + repairHeaderLen + n, true
}

// Item returns the repair item at offset off of the request and the offset
// of the next one; ok is false at the end or if the item is malformed. m is
// the field size for FEC id 2 payload ids (0 means DefaultFECM). In a RANGES
// request, items alternate between the first and the last of each range.
func (r RepairRequest) Item(off int, m uint8) (s SymbolRef, next int, ok bool) {
	if off < 0 || off >= len(r.Items) {
		return s, off, false
	}
	n := symbolRefLen(r.Items[off])
	if n == 0 || n > len(r.Items)-off {
		return s, off, false
	}
	return readSymbolRef(r.Items[off:], fecM(m)), off + n, true
}

// validateRepairContent checks that content is a sequence of well-formed
// repair requests.
func validateRepairContent(content []byte, msg string, base int, m uint8) error {
	off := 0
	for off < len(content) {
		if len(content)-off < repairHeaderLen {
			return perr(ErrContent, msg, "repair request header", base+off, repairHeaderLen, len(content)-off)
		}
		r, next, ok := NextRepairRequest(content, off)
		if !ok {
			return perr(ErrContent, msg, "repair request length", base+off+2,
				int(binary.BigEndian.Uint16(content[off+2:])), len(content)-off-repairHeaderLen)
		}
		if r.Form < FormItems || r.Form > FormErasures {
			return perr(ErrContent, msg, "repair request form", base+off, 0, int(r.Form))
		}
		items := 0
		for i := 0; i < len(r.Items); items++ {
			_, j, ok := r.Item(i, m)
			if !ok {
				if symbolRefLen(r.Items[i]) == 0 {
					return perr(ErrFECID, msg, "repair item fec_id", base+off+repairHeaderLen+i, 0, int(r.Items[i]))
				}
				return perr(ErrContent, msg, "repair item", base+off+repairHeaderLen+i, symbolRefLen(r.Items[i]), len(r.Items)-i)
			}
			i = j
		}
		if r.Form == FormRanges && items%2 != 0 {
			return perr(ErrContent, msg, "repair range (odd item count)", base+off, 0, items)
		}
		off = next
	}
	return nil
}

// AppendRepairRequest appends one repair request with the given items to a
// NACK or REPAIR_ADV content area. For FormRanges, items holds the first and
// last of each range in turn. m is the field size for FEC id 2 payload ids
// (0 means DefaultFECM). On error content is returned unchanged.
func AppendRepairRequest(content []byte, form RepairForm, flags RepairFlags, m uint8, items []SymbolRef) ([]byte, error) {
	const msg = "repair request"
	if form < FormItems || form > FormErasures {
		return content, valueErr(msg, "form", int(form))
	}
	if form == FormRanges && len(items)%2 != 0 {
		return content, valueErr(msg, "range items", len(items))
	}
	start := len(content)
	content = append(content, byte(form), byte(flags), 0, 0)
	var err error
	for _, it := range items {
		if content, err = AppendSymbolRef(content, it, m); err != nil {
			return content[:start], err
		}
	}
	n := len(content) - start - repairHeaderLen
	if n > 0xffff {
		return content[:start], valueErr(msg, "length", n)
	}
	binary.BigEndian.PutUint16(content[start+2:], uint16(n))
	return content, nil
}

// Nack is a NORM_NACK message: a receiver's repair requests to one sender
// (RFC 5740 §4.3.1).
type Nack struct {
	Header
	ServerID   uint32 // the sender the NACK is for
	InstanceID uint16 // that sender's instance
	// GRTTResponse echoes the send time of the sender's latest CMD(CC)
	// probe, adjusted by the time the receiver held it, so the sender can
	// measure the round trip.
	GRTTResponse Timestamp
	// FECM is the field size for FEC id 2 payload ids in the repair items,
	// used only to check them; see Data.FECM.
	FECM    uint8
	Ext     Extensions // usually an EXT_CC when the sender runs NORM-CC
	Content []byte     // repair requests; see NextRepairRequest
}

const receiverHeaderLen = 24

// Unmarshal parses a NORM_NACK message. Ext and Content alias b.
func (m *Nack) Unmarshal(b []byte) error {
	const msg = "NORM_NACK"
	h, hdrLen, err := parseHeader(b, TypeNack, msg, receiverHeaderLen)
	if err != nil {
		return err
	}
	ext := Extensions(b[receiverHeaderLen:hdrLen])
	if err := ext.validate(msg, receiverHeaderLen); err != nil {
		return err
	}
	fm := fecM(m.FECM)
	content := b[hdrLen:]
	if err := validateRepairContent(content, msg, hdrLen, fm); err != nil {
		return err
	}
	*m = Nack{
		Header:       h,
		ServerID:     binary.BigEndian.Uint32(b[8:]),
		InstanceID:   binary.BigEndian.Uint16(b[12:]),
		GRTTResponse: readTimestamp(b[16:]),
		FECM:         fm,
		Ext:          ext,
		Content:      content,
	}
	return nil
}

// Append encodes m at the end of b. On error b is returned unchanged.
func (m *Nack) Append(b []byte) ([]byte, error) {
	const msg = "NORM_NACK"
	if err := validateRepairContent(m.Content, msg, 0, fecM(m.FECM)); err != nil {
		return b, err
	}
	start := len(b)
	b = appendHeader(b, m.Header, TypeNack)
	b = binary.BigEndian.AppendUint32(b, m.ServerID)
	b = binary.BigEndian.AppendUint16(b, m.InstanceID)
	b = append(b, 0, 0)
	b = appendTimestamp(b, m.GRTTResponse)
	b, err := appendExt(b, m.Ext, msg, start)
	if err != nil {
		return b[:start], err
	}
	return append(b, m.Content...), nil
}

// Ack is a NORM_ACK message: a receiver's positive acknowledgement or
// congestion control feedback to one sender (RFC 5740 §4.3.2).
type Ack struct {
	Header
	ServerID     uint32
	InstanceID   uint16
	AckType      AckType
	AckID        uint8
	GRTTResponse Timestamp // see Nack.GRTTResponse
	Ext          Extensions
	// Payload: for ACK(FLUSH) the acknowledged watermark (see Watermark);
	// for application types the application's bytes; empty for ACK(CC).
	Payload []byte
}

// Unmarshal parses a NORM_ACK message. Ext and Payload alias b.
func (m *Ack) Unmarshal(b []byte) error {
	const msg = "NORM_ACK"
	h, hdrLen, err := parseHeader(b, TypeAck, msg, receiverHeaderLen)
	if err != nil {
		return err
	}
	ext := Extensions(b[receiverHeaderLen:hdrLen])
	if err := ext.validate(msg, receiverHeaderLen); err != nil {
		return err
	}
	*m = Ack{
		Header:       h,
		ServerID:     binary.BigEndian.Uint32(b[8:]),
		InstanceID:   binary.BigEndian.Uint16(b[12:]),
		AckType:      AckType(b[14]),
		AckID:        b[15],
		GRTTResponse: readTimestamp(b[16:]),
		Ext:          ext,
		Payload:      b[hdrLen:],
	}
	if m.AckType == AckFlush {
		if _, err := m.Watermark(0); err != nil {
			return err
		}
	}
	return nil
}

// Append encodes m at the end of b. On error b is returned unchanged.
func (m *Ack) Append(b []byte) ([]byte, error) {
	const msg = "NORM_ACK"
	start := len(b)
	b = appendHeader(b, m.Header, TypeAck)
	b = binary.BigEndian.AppendUint32(b, m.ServerID)
	b = binary.BigEndian.AppendUint16(b, m.InstanceID)
	b = append(b, byte(m.AckType), m.AckID)
	b = appendTimestamp(b, m.GRTTResponse)
	b, err := appendExt(b, m.Ext, msg, start)
	if err != nil {
		return b[:start], err
	}
	return append(b, m.Payload...), nil
}

// Watermark decodes the payload of an ACK(FLUSH): the object and symbol
// position being acknowledged. m is the field size for FEC id 2 (0 means
// DefaultFECM).
func (m *Ack) Watermark(fm uint8) (SymbolRef, error) {
	const msg = "NORM_ACK(FLUSH)"
	p := m.Payload
	if len(p) < 1 {
		return SymbolRef{}, perr(ErrTruncated, msg, "fec_id", 0, 1, 0)
	}
	n := symbolRefLen(p[0])
	if n == 0 {
		return SymbolRef{}, perr(ErrFECID, msg, "fec_id", 0, 0, int(p[0]))
	}
	if len(p) < n {
		return SymbolRef{}, perr(ErrTruncated, msg, "watermark", 0, n, len(p))
	}
	return readSymbolRef(p, fecM(fm)), nil
}

// Report is a NORM_REPORT message. RFC 5740 leaves its format open, so
// everything after the common header is kept as it is.
type Report struct {
	Header
	HeaderRest []byte // bytes between the common header and hdr_len
	Content    []byte
}

// Unmarshal parses a NORM_REPORT message. HeaderRest and Content alias b.
func (m *Report) Unmarshal(b []byte) error {
	h, hdrLen, err := parseHeader(b, TypeReport, "NORM_REPORT", commonHeaderLen)
	if err != nil {
		return err
	}
	*m = Report{Header: h, HeaderRest: b[commonHeaderLen:hdrLen], Content: b[hdrLen:]}
	return nil
}

// Append encodes m at the end of b. On error b is returned unchanged.
func (m *Report) Append(b []byte) ([]byte, error) {
	start := len(b)
	b = appendHeader(b, m.Header, TypeReport)
	b = append(b, m.HeaderRest...)
	if err := finishHeader(b, start, len(b)-start, "NORM_REPORT"); err != nil {
		return b[:start], err
	}
	return append(b, m.Content...), nil
}
