package framing

import "encoding/binary"

// ObjectFlags are the flags of NORM_INFO and NORM_DATA (RFC 5740 §4.2.1).
type ObjectFlags uint8

// Object flags.
const (
	FlagRepair     ObjectFlags = 0x01 // a retransmission (the reference never sets it)
	FlagExplicit   ObjectFlags = 0x02 // an explicitly requested repair
	FlagInfo       ObjectFlags = 0x04 // the object has NORM_INFO
	FlagUnreliable ObjectFlags = 0x08 // repair is not offered for this object
	FlagFile       ObjectFlags = 0x10 // the object is a file
	FlagStream     ObjectFlags = 0x20 // the object is a stream
	// FlagSyn is the reference implementation's stream sync flag (formerly
	// "message start"); not in RFC 5740.
	FlagSyn ObjectFlags = 0x40
)

// objectHeaderLen is the fixed part shared by NORM_INFO and NORM_DATA.
const objectHeaderLen = 16

// Info is a NORM_INFO message: out-of-band information about an object,
// such as a file's name (RFC 5740 §4.2.2).
type Info struct {
	Header
	SenderFields
	Flags    ObjectFlags
	FECID    uint8
	ObjectID uint16
	Ext      Extensions // header extensions, usually an EXT_FTI
	Content  []byte     // the info itself, at most one segment
}

// Unmarshal parses a NORM_INFO message. Ext and Content alias b.
func (m *Info) Unmarshal(b []byte) error {
	const msg = "NORM_INFO"
	h, hdrLen, err := parseHeader(b, TypeInfo, msg, objectHeaderLen)
	if err != nil {
		return err
	}
	ext := Extensions(b[objectHeaderLen:hdrLen])
	if err := ext.validate(msg, objectHeaderLen); err != nil {
		return err
	}
	*m = Info{
		Header:       h,
		SenderFields: readSenderFields(b),
		Flags:        ObjectFlags(b[12]),
		FECID:        b[13],
		ObjectID:     binary.BigEndian.Uint16(b[14:]),
		Ext:          ext,
		Content:      b[hdrLen:],
	}
	return nil
}

// Append encodes m at the end of b. On error b is returned unchanged.
func (m *Info) Append(b []byte) ([]byte, error) {
	const msg = "NORM_INFO"
	start := len(b)
	b = appendHeader(b, m.Header, TypeInfo)
	b, err := appendSenderFields(b, m.SenderFields, msg)
	if err != nil {
		return b[:start], err
	}
	b = append(b, byte(m.Flags), m.FECID)
	b = binary.BigEndian.AppendUint16(b, m.ObjectID)
	if b, err = appendExt(b, m.Ext, msg, start); err != nil {
		return b[:start], err
	}
	return append(b, m.Content...), nil
}

// appendExt appends the extension area and sets hdr_len to cover it.
func appendExt(b []byte, ext Extensions, msg string, start int) ([]byte, error) {
	if err := ext.validate(msg, len(b)-start); err != nil {
		return b, err
	}
	b = append(b, ext...)
	return b, finishHeader(b, start, len(b)-start, msg)
}

// Data is a NORM_DATA message: one source or parity symbol of an object
// (RFC 5740 §4.2.1).
type Data struct {
	Header
	SenderFields
	Flags     ObjectFlags
	FECID     uint8
	ObjectID  uint16
	PayloadID PayloadID
	// FECM is the field size m of FEC id 2 (8 or 16), which decides how the
	// payload id splits into block and symbol. Unmarshal takes it from the
	// message's EXT_FTI when there is one and otherwise keeps the value the
	// caller left in it (a receiver knows it from the object's FTI), with 0
	// meaning DefaultFECM. Ignored for other FEC ids.
	FECM uint8
	Ext  Extensions // header extensions, usually an EXT_FTI
	// Payload is everything after the header: for source symbols of a
	// stream object it starts with the 8-byte stream payload header (see
	// StreamHeader); for parity symbols it is the parity symbol.
	Payload []byte
}

// Unmarshal parses a NORM_DATA message. Ext and Payload alias b.
func (m *Data) Unmarshal(b []byte) error {
	const msg = "NORM_DATA"
	h, hdrLen, err := parseHeader(b, TypeData, msg, objectHeaderLen)
	if err != nil {
		return err
	}
	fecID := b[13]
	n := PayloadIDLen(fecID)
	if n == 0 {
		return perr(ErrFECID, msg, "fec_id", 13, 0, int(fecID))
	}
	base := objectHeaderLen + n
	if hdrLen < base {
		return perr(ErrHeaderLength, msg, "hdr_len", 1, base, hdrLen)
	}
	ext := Extensions(b[base:hdrLen])
	if err := ext.validate(msg, base); err != nil {
		return err
	}
	fm := fecM(m.FECM)
	if fecID == FECRS {
		if f, ok, err := ext.FTI(fecID); err == nil && ok && (f.M == 8 || f.M == 16) {
			fm = f.M
		}
	}
	*m = Data{
		Header:       h,
		SenderFields: readSenderFields(b),
		Flags:        ObjectFlags(b[12]),
		FECID:        fecID,
		ObjectID:     binary.BigEndian.Uint16(b[14:]),
		PayloadID:    readPayloadID(b[objectHeaderLen:], fecID, fm),
		FECM:         fm,
		Ext:          ext,
		Payload:      b[hdrLen:],
	}
	return nil
}

// Append encodes m at the end of b. On error b is returned unchanged.
func (m *Data) Append(b []byte) ([]byte, error) {
	const msg = "NORM_DATA"
	start := len(b)
	b = appendHeader(b, m.Header, TypeData)
	b, err := appendSenderFields(b, m.SenderFields, msg)
	if err != nil {
		return b[:start], err
	}
	b = append(b, byte(m.Flags), m.FECID)
	b = binary.BigEndian.AppendUint16(b, m.ObjectID)
	if b, err = appendPayloadID(b, m.FECID, fecM(m.FECM), m.PayloadID, msg); err != nil {
		return b[:start], err
	}
	if b, err = appendExt(b, m.Ext, msg, start); err != nil {
		return b[:start], err
	}
	return append(b, m.Payload...), nil
}

// StreamHeaderLen is the length of the stream payload header that starts
// every source symbol of a stream object. FEC symbols of the reference
// implementation are segment size + StreamHeaderLen bytes long for every
// object type, so that stream and non-stream objects share one code.
const StreamHeaderLen = 8

// StreamHeader is the header of a stream object's source symbol payload
// (RFC 5740 §4.2.1).
type StreamHeader struct {
	Len      uint16 // payload_len: bytes of stream data in this segment
	MsgStart uint16 // payload_msg_start: 1 + offset of the first message start, 0 if none
	Offset   uint32 // payload_offset: stream byte offset of this segment (mod 2^32)
}

// StreamHeader reads the stream payload header of a stream source symbol and
// returns the stream data after it (Len bytes, or what the packet has if
// shorter is an error). It means nothing for parity symbols, whose payload is
// coded.
func (m *Data) StreamHeader() (StreamHeader, []byte, error) {
	const msg = "NORM_DATA stream payload"
	p := m.Payload
	if len(p) < StreamHeaderLen {
		return StreamHeader{}, nil, perr(ErrTruncated, msg, "stream payload header", 0, StreamHeaderLen, len(p))
	}
	h := StreamHeader{
		Len:      binary.BigEndian.Uint16(p),
		MsgStart: binary.BigEndian.Uint16(p[2:]),
		Offset:   binary.BigEndian.Uint32(p[4:]),
	}
	if int(h.Len) > len(p)-StreamHeaderLen {
		return h, nil, perr(ErrContent, msg, "payload_len", 0, int(h.Len), len(p)-StreamHeaderLen)
	}
	return h, p[StreamHeaderLen : StreamHeaderLen+int(h.Len)], nil
}

// AppendStreamHeader appends a stream payload header; the stream data
// follows it.
func AppendStreamHeader(b []byte, h StreamHeader) []byte {
	b = binary.BigEndian.AppendUint16(b, h.Len)
	b = binary.BigEndian.AppendUint16(b, h.MsgStart)
	return binary.BigEndian.AppendUint32(b, h.Offset)
}
