package framing

import (
	"encoding/binary"
	"strconv"
)

// Flavor is the kind of a NORM_CMD message (RFC 5740 §4.2.3).
type Flavor uint8

// Command flavors.
const (
	FlavorFlush       Flavor = 1 // end of transmission so far; may request watermark acks
	FlavorEOT         Flavor = 2 // the sender is done for good
	FlavorSquelch     Flavor = 3 // requested data is no longer available
	FlavorCC          Flavor = 4 // congestion control probe
	FlavorRepairAdv   Flavor = 5 // repairs the sender will send, for NACK suppression
	FlavorAckReq      Flavor = 6 // positive acknowledgement request
	FlavorApplication Flavor = 7 // application-defined command
)

var flavorNames = [...]string{"INVALID", "FLUSH", "EOT", "SQUELCH", "CC", "REPAIR_ADV", "ACK_REQ", "APPLICATION"}

// String returns the flavor's RFC 5740 name without the NORM_CMD_ prefix.
func (f Flavor) String() string {
	if int(f) < len(flavorNames) {
		return flavorNames[f]
	}
	return "FLAVOR(" + strconv.Itoa(int(f)) + ")"
}

// AckType is the type of a positive acknowledgement, in CMD(ACK_REQ) and
// NORM_ACK (RFC 5740 §4.3.2). Types 16-255 are the application's.
type AckType uint8

// Acknowledgement types.
const (
	AckCC      AckType = 1  // answer to a CMD(CC) probe, carrying EXT_CC
	AckFlush   AckType = 2  // watermark acknowledgement for a CMD(FLUSH)
	AckAppBase AckType = 16 // first application-defined type
)

// String returns "CC", "FLUSH", "APPLICATION" (types 16 and up) or "ACK(n)".
func (t AckType) String() string {
	switch {
	case t == AckCC:
		return "CC"
	case t == AckFlush:
		return "FLUSH"
	case t >= AckAppBase:
		return "APPLICATION"
	}
	return "ACK(" + strconv.Itoa(int(t)) + ")"
}

// RepairAdvLimit is the CMD(REPAIR_ADV) flag that says the advertised
// repairs were limited by the sender's buffer, so receivers should not take
// the list as complete.
const RepairAdvLimit uint8 = 0x01

// Cmd is a NORM_CMD message. The fields that a flavor does not use are zero
// after Unmarshal and ignored by Append. What Content holds depends on the
// flavor:
//
//	FLUSH:       acking node ids (4 bytes each; see Node)
//	EOT:         nothing
//	SQUELCH:     invalidated object ids (2 bytes each; see SquelchedObject)
//	CC:          CC node entries (8 bytes each; see CCNode)
//	REPAIR_ADV:  repair requests (see NextRepairRequest)
//	ACK_REQ:     acking node ids (4 bytes each; see Node)
//	APPLICATION: the application's bytes
type Cmd struct {
	Header
	SenderFields
	Flavor Flavor

	// FLUSH and SQUELCH: the object and symbol the command refers to (the
	// sender's transmit position, or the oldest repairable symbol).
	Ref  SymbolRef
	FECM uint8 // field size for FEC id 2 payload ids; see Data.FECM

	// CC: probe sequence number and send time (echoed by receivers).
	CCSequence uint16
	SendTime   Timestamp
	// Syn is the reference implementation's SYN bit in the reserved byte
	// of CMD(CC) (not in RFC 5740).
	Syn bool

	// REPAIR_ADV flags (RepairAdvLimit).
	AdvFlags uint8

	// ACK_REQ: which acknowledgement is requested.
	AckType AckType
	AckID   uint8

	Ext     Extensions
	Content []byte
}

// cmdBaseLen returns the fixed header length of a flavor (for FLUSH and
// SQUELCH given the FEC id), or 0 if the flavor or FEC id is unknown.
func cmdBaseLen(f Flavor, fecID uint8) int {
	switch f {
	case FlavorFlush, FlavorSquelch:
		if n := PayloadIDLen(fecID); n > 0 {
			return 16 + n
		}
		return 0
	case FlavorCC:
		return 24
	case FlavorEOT, FlavorRepairAdv, FlavorAckReq, FlavorApplication:
		return 16
	}
	return 0
}

const cmdFixedLen = 13 // common header, sender fields and flavor

// Unmarshal parses a NORM_CMD message of any flavor. Ext and Content alias b.
func (m *Cmd) Unmarshal(b []byte) error {
	const msg = "NORM_CMD"
	h, hdrLen, err := parseHeader(b, TypeCmd, msg, cmdFixedLen)
	if err != nil {
		return err
	}
	// hdr_len is a whole number of words no smaller than 13, so the packet
	// holds at least 16 bytes here.
	fl := Flavor(b[12])
	fecID := b[13]
	base := cmdBaseLen(fl, fecID)
	if base == 0 {
		if fl == FlavorFlush || fl == FlavorSquelch {
			return perr(ErrFECID, msg, "fec_id", 13, 0, int(fecID))
		}
		return perr(ErrType, msg, "flavor", 12, 0, int(fl))
	}
	if len(b) < base {
		return perr(ErrTruncated, msg+"("+fl.String()+")", "header", 0, base, len(b))
	}
	if hdrLen < base {
		return perr(ErrHeaderLength, msg+"("+fl.String()+")", "hdr_len", 1, base, hdrLen)
	}
	ext := Extensions(b[base:hdrLen])
	if err := ext.validate(msg, base); err != nil {
		return err
	}
	fm := fecM(m.FECM)
	*m = Cmd{
		Header:       h,
		SenderFields: readSenderFields(b),
		Flavor:       fl,
		FECM:         fm,
		Ext:          ext,
		Content:      b[hdrLen:],
	}
	switch fl {
	case FlavorFlush, FlavorSquelch:
		m.Ref = SymbolRef{
			FECID:     fecID,
			ObjectID:  binary.BigEndian.Uint16(b[14:]),
			PayloadID: readPayloadID(b[16:], fecID, fm),
		}
	case FlavorCC:
		m.Syn = b[13]&0x01 != 0
		m.CCSequence = binary.BigEndian.Uint16(b[14:])
		m.SendTime = readTimestamp(b[16:])
	case FlavorRepairAdv:
		m.AdvFlags = b[13]
	case FlavorAckReq:
		m.AckType = AckType(b[14])
		m.AckID = b[15]
	}
	return m.validateContent(hdrLen)
}

func (m *Cmd) validateContent(off int) error {
	const msg = "NORM_CMD"
	item := 0
	switch m.Flavor {
	case FlavorFlush, FlavorAckReq:
		item = 4
	case FlavorSquelch:
		item = 2
	case FlavorCC:
		item = ccNodeLen
	case FlavorRepairAdv:
		return validateRepairContent(m.Content, msg+"(REPAIR_ADV)", off, m.FECM)
	}
	if item > 0 && len(m.Content)%item != 0 {
		return perr(ErrContent, msg+"("+m.Flavor.String()+")", "content length", off, item, len(m.Content)%item)
	}
	return nil
}

// Append encodes m at the end of b. On error b is returned unchanged.
func (m *Cmd) Append(b []byte) ([]byte, error) {
	const msg = "NORM_CMD"
	start := len(b)
	if cmdBaseLen(m.Flavor, m.Ref.FECID) == 0 {
		if m.Flavor == FlavorFlush || m.Flavor == FlavorSquelch {
			return b, valueErr(msg, "fec_id", int(m.Ref.FECID))
		}
		return b, valueErr(msg, "flavor", int(m.Flavor))
	}
	if err := m.validateContent(0); err != nil {
		return b, err
	}
	b = appendHeader(b, m.Header, TypeCmd)
	b, err := appendSenderFields(b, m.SenderFields, msg)
	if err != nil {
		return b[:start], err
	}
	b = append(b, byte(m.Flavor))
	switch m.Flavor {
	case FlavorFlush, FlavorSquelch:
		b = append(b, m.Ref.FECID)
		b = binary.BigEndian.AppendUint16(b, m.Ref.ObjectID)
		if b, err = appendPayloadID(b, m.Ref.FECID, fecM(m.FECM), m.Ref.PayloadID, msg); err != nil {
			return b[:start], err
		}
	case FlavorCC:
		syn := byte(0)
		if m.Syn {
			syn = 0x01
		}
		b = append(b, syn)
		b = binary.BigEndian.AppendUint16(b, m.CCSequence)
		b = appendTimestamp(b, m.SendTime)
	case FlavorRepairAdv:
		b = append(b, m.AdvFlags, 0, 0)
	case FlavorAckReq:
		b = append(b, 0, byte(m.AckType), m.AckID)
	default: // EOT, APPLICATION
		b = append(b, 0, 0, 0)
	}
	if b, err = appendExt(b, m.Ext, msg, start); err != nil {
		return b[:start], err
	}
	return append(b, m.Content...), nil
}

// NodeCount returns the number of node ids in the acking node list of a
// CMD(FLUSH) or CMD(ACK_REQ).
func (m *Cmd) NodeCount() int { return len(m.Content) / 4 }

// Node returns the i-th node id of the acking node list.
func (m *Cmd) Node(i int) uint32 { return binary.BigEndian.Uint32(m.Content[4*i:]) }

// AppendNodeID appends a node id to an acking node list (Cmd.Content of a
// FLUSH or ACK_REQ).
func AppendNodeID(content []byte, id uint32) []byte {
	return binary.BigEndian.AppendUint32(content, id)
}

// SquelchCount returns the number of object ids in the invalid object list of
// a CMD(SQUELCH).
func (m *Cmd) SquelchCount() int { return len(m.Content) / 2 }

// SquelchedObject returns the i-th invalidated object id of a CMD(SQUELCH).
func (m *Cmd) SquelchedObject(i int) uint16 { return binary.BigEndian.Uint16(m.Content[2*i:]) }

// AppendObjectID appends an object id to a CMD(SQUELCH) invalid object list.
func AppendObjectID(content []byte, id uint16) []byte {
	return binary.BigEndian.AppendUint16(content, id)
}

const ccNodeLen = 8

// CCNode is one entry of a CMD(CC) node list: a receiver the sender wants
// feedback from (the CLR and candidates), with the RTT the sender measured
// to it and the rate it reported (RFC 5740 §4.2.3.3).
type CCNode struct {
	NodeID uint32
	Flags  CCFlags
	RTT    uint8  // quantized (QuantizeRTT)
	Rate   uint16 // quantized (QuantizeRate)
}

// CCNodeCount returns the number of entries in a CMD(CC) node list.
func (m *Cmd) CCNodeCount() int { return len(m.Content) / ccNodeLen }

// CCNode returns the i-th entry of a CMD(CC) node list.
func (m *Cmd) CCNode(i int) CCNode {
	b := m.Content[ccNodeLen*i:]
	return CCNode{
		NodeID: binary.BigEndian.Uint32(b),
		Flags:  CCFlags(b[4]),
		RTT:    b[5],
		Rate:   binary.BigEndian.Uint16(b[6:]),
	}
}

// AppendCCNode appends an entry to a CMD(CC) node list.
func AppendCCNode(content []byte, n CCNode) []byte {
	content = binary.BigEndian.AppendUint32(content, n.NodeID)
	content = append(content, byte(n.Flags), n.RTT)
	return binary.BigEndian.AppendUint16(content, n.Rate)
}
