package framing_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/shoalnet/shoal/framing"
)

func encode(t *testing.T, m framing.Message) []byte {
	t.Helper()
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTruncatedEverywhere cuts every sample message at every length: below
// hdr_len each cut must be an error that says so; above it the parser may
// accept a shorter payload (a datagram's length is the message's), but it
// must never panic or read past the buffer (the slice is cut to capacity so
// the race detector and bounds checks catch any overread).
func TestTruncatedEverywhere(t *testing.T) {
	for name, m := range sampleMessages(t) {
		b := encode(t, m)
		hdrLen := int(b[1]) * 4
		for i := range len(b) {
			cut := b[:i:i]
			var got framing.Message
			err := got.Unmarshal(cut)
			if i < hdrLen {
				if err == nil {
					t.Errorf("%s cut to %d of %d bytes (hdr_len %d): no error", name, i, len(b), hdrLen)
				} else if !errors.Is(err, framing.ErrTruncated) && !errors.Is(err, framing.ErrHeaderLength) {
					t.Errorf("%s cut to %d: %v, want ErrTruncated or ErrHeaderLength", name, i, err)
				}
			}
		}
	}
}

func TestMalformed(t *testing.T) {
	s := sampleMessages(t)
	data := encode(t, s["DATA/fec5"])
	nack := encode(t, s["NACK"])
	cc := encode(t, s["CMD(CC)"])
	ackFlush := encode(t, s["ACK(FLUSH)"])
	repairAdv := encode(t, s["CMD(REPAIR_ADV)"])

	mod := func(b []byte, f func(b []byte) []byte) []byte {
		c := append([]byte(nil), b...)
		return f(c)
	}
	nackHdr := int(nack[1]) * 4
	advHdr := int(repairAdv[1]) * 4
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, framing.ErrTruncated},
		{"7 bytes", data[:7], framing.ErrTruncated},
		{"version 2", mod(data, func(b []byte) []byte { b[0] = 0x22; return b }), framing.ErrVersion},
		{"version 0", mod(data, func(b []byte) []byte { b[0] = 0x02; return b }), framing.ErrVersion},
		{"type 0", mod(data, func(b []byte) []byte { b[0] = 0x10; return b }), framing.ErrType},
		{"type 15", mod(data, func(b []byte) []byte { b[0] = 0x1f; return b }), framing.ErrType},
		{"hdr_len past the packet", mod(data, func(b []byte) []byte { b[1] = 200; return b }), framing.ErrHeaderLength},
		{"hdr_len below the common header", mod(data, func(b []byte) []byte { b[1] = 1; return b }), framing.ErrHeaderLength},
		{"DATA hdr_len below its fixed header", mod(data, func(b []byte) []byte { b[1] = 4; return b }), framing.ErrHeaderLength},
		{"DATA unknown fec id", mod(data, func(b []byte) []byte { b[13] = 3; return b }), framing.ErrFECID},
		{"extension length zero", mod(data, func(b []byte) []byte { b[21] = 0; return b }), framing.ErrExtension},
		{"extension overruns hdr_len", mod(data, func(b []byte) []byte { b[21] = 9; return b }), framing.ErrExtension},
		{"EXT_FTI too short", mod(data, func(b []byte) []byte {
			// shrink the FTI to 2 words and hdr_len with it
			b[21] = 2
			b[1] -= 1
			return append(b[:28], b[32:]...)
		}), framing.ErrExtension},
		{"hdr_len splits an extension", mod(data, func(b []byte) []byte { b[1] -= 1; return b }), framing.ErrExtension},
		{"CMD unknown flavor", mod(cc, func(b []byte) []byte { b[12] = 8; return b }), framing.ErrType},
		{"CMD flavor 0", mod(cc, func(b []byte) []byte { b[12] = 0; return b }), framing.ErrType},
		{"CMD(CC) ragged node list", cc[:len(cc)-3], framing.ErrContent},
		{"CMD(FLUSH) unknown fec id", mod(encode(t, s["CMD(FLUSH)/fec5"]), func(b []byte) []byte { b[13] = 4; return b }), framing.ErrFECID},
		{"CMD(FLUSH) ragged node list", mod(encode(t, s["CMD(FLUSH)/fec5"]), func(b []byte) []byte { return b[:len(b)-1] }), framing.ErrContent},
		{"CMD(SQUELCH) ragged object list", mod(encode(t, s["CMD(SQUELCH)"]), func(b []byte) []byte { return b[:len(b)-1] }), framing.ErrContent},
		{"NACK repair length overruns", mod(nack, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[nackHdr+2:], 0xfff0)
			return b
		}), framing.ErrContent},
		{"NACK repair header cut", nack[:nackHdr+2], framing.ErrContent},
		{"NACK repair item cut", nack[:len(nack)-1], framing.ErrContent},
		{"NACK repair form 0", mod(nack, func(b []byte) []byte { b[nackHdr] = 0; return b }), framing.ErrContent},
		{"NACK repair form 4", mod(nack, func(b []byte) []byte { b[nackHdr] = 4; return b }), framing.ErrContent},
		{"NACK item unknown fec id", mod(nack, func(b []byte) []byte { b[nackHdr+4] = 77; return b }), framing.ErrFECID},
		{"NACK odd RANGES", func() []byte {
			c, _ := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairSegment, 0, make([]framing.SymbolRef, 3))
			c[0] = byte(framing.FormRanges)
			m := s["NACK"]
			m.Nack.Content = nil
			return append(encode(t, m), c...)
		}(), framing.ErrContent},
		{"REPAIR_ADV bad content", mod(repairAdv, func(b []byte) []byte { b[advHdr] = 9; return b }), framing.ErrContent},
		{"ACK(FLUSH) without watermark", ackFlush[:len(ackFlush)-8], framing.ErrTruncated},
		{"ACK(FLUSH) short watermark", ackFlush[:len(ackFlush)-1], framing.ErrTruncated},
		{"ACK(FLUSH) unknown fec id", mod(ackFlush, func(b []byte) []byte { b[len(b)-8] = 1; return b }), framing.ErrFECID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m framing.Message
			err := m.Unmarshal(c.b)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			var pe *framing.ParseError
			if !errors.As(err, &pe) || pe.Msg == "" || pe.Field == "" {
				t.Fatalf("error %v is not a descriptive *ParseError", err)
			}
		})
	}
}

// TestWrongParser hands each message to the parser of another type.
func TestWrongParser(t *testing.T) {
	b := encode(t, sampleMessages(t)["CMD(CC)"])
	parsers := map[string]interface{ Unmarshal([]byte) error }{
		"Info": &framing.Info{}, "Data": &framing.Data{}, "Nack": &framing.Nack{},
		"Ack": &framing.Ack{}, "Report": &framing.Report{},
	}
	for name, p := range parsers {
		if err := p.Unmarshal(b); !errors.Is(err, framing.ErrType) {
			t.Errorf("%s.Unmarshal(CMD) = %v, want ErrType", name, err)
		}
	}
}

func TestErrorText(t *testing.T) {
	var d framing.Data
	err := d.Unmarshal([]byte{0x12, 0x08, 0, 0, 0, 0})
	want := "framing: NORM_DATA: truncated: common header at offset 0 (need 8, have 6)"
	if err == nil || err.Error() != want {
		t.Fatalf("error text %q, want %q", err, want)
	}
}

func TestStreamHeaderErrors(t *testing.T) {
	d := framing.Data{Payload: []byte{0, 1, 2}}
	if _, _, err := d.StreamHeader(); !errors.Is(err, framing.ErrTruncated) {
		t.Fatalf("short stream header: %v", err)
	}
	d.Payload = framing.AppendStreamHeader(nil, framing.StreamHeader{Len: 10})
	if _, _, err := d.StreamHeader(); !errors.Is(err, framing.ErrContent) {
		t.Fatalf("payload_len past the packet: %v", err)
	}
}
