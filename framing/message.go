package framing

// Message holds any NORM message, for code that handles whatever arrives
// (dump tools, tests, a receiver's dispatch loop). After Unmarshal, Type says
// which field is valid; the other fields keep whatever they held before, so
// one Message can be reused for every packet without allocating.
type Message struct {
	Type   Type
	Info   Info
	Data   Data
	Cmd    Cmd
	Nack   Nack
	Ack    Ack
	Report Report
}

// Unmarshal parses any NORM message into the field its type selects.
func (m *Message) Unmarshal(b []byte) error {
	h, _, err := Peek(b)
	if err != nil {
		return err
	}
	switch h.Type {
	case TypeInfo:
		err = m.Info.Unmarshal(b)
	case TypeData:
		err = m.Data.Unmarshal(b)
	case TypeCmd:
		err = m.Cmd.Unmarshal(b)
	case TypeNack:
		err = m.Nack.Unmarshal(b)
	case TypeAck:
		err = m.Ack.Unmarshal(b)
	case TypeReport:
		err = m.Report.Unmarshal(b)
	default:
		return perr(ErrType, "NORM", "type", 0, 0, int(h.Type))
	}
	if err == nil {
		m.Type = h.Type
	}
	return err
}

// Append encodes the field that Type selects at the end of b.
func (m *Message) Append(b []byte) ([]byte, error) {
	switch m.Type {
	case TypeInfo:
		return m.Info.Append(b)
	case TypeData:
		return m.Data.Append(b)
	case TypeCmd:
		return m.Cmd.Append(b)
	case TypeNack:
		return m.Nack.Append(b)
	case TypeAck:
		return m.Ack.Append(b)
	case TypeReport:
		return m.Report.Append(b)
	}
	return b, valueErr("NORM", "type", int(m.Type))
}

// Header returns the common header of the message Type selects.
func (m *Message) Header() Header {
	switch m.Type {
	case TypeInfo:
		return m.Info.Header
	case TypeData:
		return m.Data.Header
	case TypeCmd:
		return m.Cmd.Header
	case TypeNack:
		return m.Nack.Header
	case TypeAck:
		return m.Ack.Header
	case TypeReport:
		return m.Report.Header
	}
	return Header{}
}
