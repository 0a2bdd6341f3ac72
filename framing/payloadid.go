package framing

import "encoding/binary"

// FEC encoding ids whose payload id formats this codec knows.
const (
	FECNoCode     uint8 = 0   // RFC 5445 compact no-code
	FECRS         uint8 = 2   // RFC 5510 Reed-Solomon over GF(2^m)
	FECRS8        uint8 = 5   // RFC 5510 Reed-Solomon over GF(2^8)
	FECSmallBlock uint8 = 129 // RFC 5445 small block systematic
)

// DefaultFECM is the field size m assumed for FEC id 2 when nothing says
// otherwise: the reference implementation uses FEC id 2 only with m = 16,
// for blocks longer than FEC id 5 allows.
const DefaultFECM = 16

// PayloadID is a FEC payload id: which block of an object a symbol belongs
// to and which encoding symbol it is. How many bits each field has on the
// wire depends on the FEC encoding id:
//
//	FEC id 0:        16-bit block, 16-bit symbol
//	FEC id 2, m=8:   24-bit block,  8-bit symbol
//	FEC id 2, m=16:  16-bit block, 16-bit symbol
//	FEC id 5:        24-bit block,  8-bit symbol
//	FEC id 129:      32-bit block, 16-bit block length, 16-bit symbol
//
// In ERASURES repair requests the Symbol field holds an erasure count.
type PayloadID struct {
	Block    uint32 // source block number
	Symbol   uint16 // encoding symbol id (source symbols first, then parity)
	BlockLen uint16 // source block length; on the wire for FEC id 129 only
}

// PayloadIDLen returns the wire length of a FEC payload id, or 0 if the FEC
// id is unknown.
func PayloadIDLen(fecID uint8) int {
	switch fecID {
	case 0, 2, 5:
		return 4
	case 129:
		return 8
	}
	return 0
}

// readPayloadID decodes a payload id from b, which must hold
// PayloadIDLen(fecID) bytes.
func readPayloadID(b []byte, fecID, m uint8) PayloadID {
	switch fecID {
	case 129:
		return PayloadID{
			Block:    binary.BigEndian.Uint32(b),
			BlockLen: binary.BigEndian.Uint16(b[4:]),
			Symbol:   binary.BigEndian.Uint16(b[6:]),
		}
	case 5:
		w := binary.BigEndian.Uint32(b)
		return PayloadID{Block: w >> 8, Symbol: uint16(w & 0xff)}
	case 2:
		if m == 8 {
			w := binary.BigEndian.Uint32(b)
			return PayloadID{Block: w >> 8, Symbol: uint16(w & 0xff)}
		}
	}
	return PayloadID{Block: uint32(binary.BigEndian.Uint16(b)), Symbol: binary.BigEndian.Uint16(b[2:])}
}

func appendPayloadID(b []byte, fecID, m uint8, p PayloadID, msg string) ([]byte, error) {
	narrow := fecID == 5 || (fecID == 2 && m == 8)
	switch {
	case fecID == 129:
		b = binary.BigEndian.AppendUint32(b, p.Block)
		b = binary.BigEndian.AppendUint16(b, p.BlockLen)
		return binary.BigEndian.AppendUint16(b, p.Symbol), nil
	case narrow:
		if p.Block > 0xffffff || p.Symbol > 0xff {
			return b, valueErr(msg, "fec_payload_id", int(p.Block))
		}
		return binary.BigEndian.AppendUint32(b, p.Block<<8|uint32(p.Symbol)), nil
	case fecID == 0 || fecID == 2:
		if p.Block > 0xffff {
			return b, valueErr(msg, "fec_payload_id", int(p.Block))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(p.Block))
		return binary.BigEndian.AppendUint16(b, p.Symbol), nil
	}
	return b, perr(ErrFECID, msg, "fec_id", 0, 0, int(fecID))
}

func fecM(m uint8) uint8 {
	if m == 0 {
		return DefaultFECM
	}
	return m
}

// SymbolRef names one symbol of one object: the fec_id, object id and FEC
// payload id group that NORM repeats in repair items (NACK, REPAIR_ADV), in
// CMD(FLUSH) and CMD(SQUELCH) and in ACK(FLUSH). On the wire it is fec_id
// (8 bits), reserved (8), object id (16), then the payload id.
type SymbolRef struct {
	FECID     uint8
	ObjectID  uint16
	PayloadID PayloadID
}

// symbolRefLen is the wire length of a SymbolRef, or 0 for an unknown FEC id.
func symbolRefLen(fecID uint8) int {
	if n := PayloadIDLen(fecID); n > 0 {
		return 4 + n
	}
	return 0
}

func readSymbolRef(b []byte, m uint8) SymbolRef {
	return SymbolRef{
		FECID:     b[0],
		ObjectID:  binary.BigEndian.Uint16(b[2:]),
		PayloadID: readPayloadID(b[4:], b[0], m),
	}
}

// AppendSymbolRef appends r in its wire form. m is the field size for FEC
// id 2 (8 or 16; 0 means DefaultFECM).
func AppendSymbolRef(b []byte, r SymbolRef, m uint8) ([]byte, error) {
	if PayloadIDLen(r.FECID) == 0 {
		return b, perr(ErrFECID, "repair item", "fec_id", 0, 0, int(r.FECID))
	}
	b = append(b, r.FECID, 0)
	b = binary.BigEndian.AppendUint16(b, r.ObjectID)
	return appendPayloadID(b, r.FECID, fecM(m), r.PayloadID, "repair item")
}
