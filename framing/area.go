package framing

// ExtAuth is the header extension type of EXT_AUTH (RFC 5740 §4.1 reserves
// type 1 for it; RFC 6584 defines its use). Package secure writes and
// checks it; the codec only carries it through like any unknown extension.
const ExtAuth uint8 = 1

// ExtensionArea returns where the header extension area of any NORM message
// lies in b: from start (the end of the message type's fixed header) to
// hdrLen (where the content begins). It checks what is needed to find the
// area (version, hdr_len, type, command flavor, FEC id) but not the
// extensions themselves; Extensions(b[start:hdrLen]).Check does that.
// NORM_REPORT has no fixed layout beyond the common header, so its area is
// taken to start right after it.
func ExtensionArea(b []byte) (start, hdrLen int, err error) {
	h, hdrLen, err := Peek(b)
	if err != nil {
		return 0, 0, err
	}
	const msg = "header extension area"
	switch h.Type {
	case TypeInfo:
		start = objectHeaderLen
	case TypeData:
		if len(b) < objectHeaderLen {
			return 0, 0, perr(ErrTruncated, msg, "NORM_DATA header", 0, objectHeaderLen, len(b))
		}
		n := PayloadIDLen(b[13])
		if n == 0 {
			return 0, 0, perr(ErrFECID, msg, "fec_id", 13, 0, int(b[13]))
		}
		start = objectHeaderLen + n
	case TypeCmd:
		if len(b) < cmdFixedLen+1 {
			return 0, 0, perr(ErrTruncated, msg, "NORM_CMD header", 0, cmdFixedLen+1, len(b))
		}
		start = cmdBaseLen(Flavor(b[12]), b[13])
		if start == 0 {
			return 0, 0, perr(ErrType, msg, "flavor or fec_id", 12, 0, int(b[12]))
		}
	case TypeNack, TypeAck:
		start = receiverHeaderLen
	case TypeReport:
		start = commonHeaderLen
	default:
		return 0, 0, perr(ErrType, msg, "type", 0, 0, int(h.Type))
	}
	if hdrLen < start {
		return 0, 0, perr(ErrHeaderLength, msg, "hdr_len", 1, start, hdrLen)
	}
	return start, hdrLen, nil
}
