package receiver

import "github.com/shoalnet/shoal/framing"

// DefaultMaxMessage is the largest message a MessageReader made with max
// 0 accepts.
const DefaultMaxMessage = 16 << 20

// Message is one whole message of a message-mode stream.
type Message struct {
	// Data is the message. It is valid until the next call into the
	// MessageReader, and may alias the data fed to it.
	Data []byte
	// Seq is the message's number in the stream (framing.MsgHeader).
	Seq uint32
	// Lost is how many messages before this one, since the last one
	// returned (or the stream's start), were lost for good: never
	// delivered, not even in part.
	Lost uint32
	// End says this is not a message but the stream's end of messages
	// (framing.MsgEndLen): Seq is the number of messages the stream
	// carried, Lost those missing at its very end, and there is no Data.
	End bool
}

// MessageReader reassembles the whole messages of a message-mode stream
// (framing.MsgHeader) from its EventStreamData and EventStreamGap events,
// in order. After a gap, and on joining late, it resumes at the next
// message start the stream marks; a message that a gap cut is dropped
// whole and counted in the next message's Lost. It is sans-I/O and
// allocates only to assemble a message that arrives in pieces (once, up to
// the largest such message).
type MessageReader struct {
	max    int
	synced bool // parsing at a message boundary or inside a framed message
	hdr    [framing.MsgHeaderLen]byte
	hn     int // header bytes held
	want   int // message bytes still to come, once the header is complete
	seq    uint32
	cur    uint32 // the message being assembled
	began  bool
	body   []byte
	bad    uint64
}

// NewMessageReader returns a reader that accepts messages of up to max
// bytes (0 means DefaultMaxMessage); a header announcing more is taken as
// a framing error, and reading resumes at the next message start.
func NewMessageReader(max int) *MessageReader {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	return &MessageReader{max: max}
}

// FramingErrors counts the places where the stream did not hold valid
// message framing (a message start marked inside a message, or an
// oversized length): what was being assembled there was dropped.
func (m *MessageReader) FramingErrors() uint64 { return m.bad }

// Gap tells the reader that stream data was lost for good just before the
// data fed next (EventStreamGap).
func (m *MessageReader) Gap() {
	m.synced, m.hn, m.body = false, 0, m.body[:0]
}

// Feed consumes stream data d, whose first message start is at msgStart
// (EventStreamData.MsgStart; -1 if none), until a message completes. It
// returns how many bytes of d it took and, with ok, the message. Feed the
// rest, d[n:], again, with msgStart-n if msgStart >= n and -1 otherwise,
// until it is all taken.
func (m *MessageReader) Feed(d []byte, msgStart int) (n int, msg Message, ok bool) {
	for n < len(d) {
		if msgStart >= 0 && n == msgStart {
			if m.synced && (m.hn > 0) {
				// A message starts where the framing says another one
				// goes on: drop what was assembled and trust the mark.
				m.bad++
			}
			m.synced, m.hn, m.body = true, 0, m.body[:0]
		}
		limit := len(d)
		if msgStart > n {
			limit = msgStart
		}
		if !m.synced {
			n = limit // skip to the next message start
			continue
		}
		if m.hn < framing.MsgHeaderLen {
			c := copy(m.hdr[m.hn:], d[n:limit])
			m.hn += c
			n += c
			if m.hn < framing.MsgHeaderLen {
				continue
			}
			h, _ := framing.ParseMsgHeader(m.hdr[:])
			if h.Len == framing.MsgEndLen {
				m.cur = h.Seq
				msg := m.complete(nil)
				msg.End, msg.Seq = true, h.Seq
				m.synced = false // nothing is framed after it
				return n, msg, true
			}
			if int64(h.Len) > int64(m.max) {
				m.bad++
				m.synced, m.hn = false, 0
				continue
			}
			m.cur, m.want, m.body = h.Seq, int(h.Len), m.body[:0]
			if m.want == 0 {
				return n, m.complete(nil), true
			}
			continue
		}
		take := min(m.want, limit-n)
		if len(m.body) == 0 && take == m.want {
			data := d[n : n+take]
			n += take
			return n, m.complete(data), true
		}
		m.body = append(m.body, d[n:n+take]...)
		n += take
		m.want -= take
		if m.want == 0 {
			return n, m.complete(m.body), true
		}
	}
	return n, Message{}, false
}

// complete returns the message assembled and readies the reader for the
// next one.
func (m *MessageReader) complete(data []byte) Message {
	msg := Message{Data: data, Seq: m.cur}
	switch d := int32(m.cur - m.seq); {
	case !m.began:
		msg.Lost = m.cur // those before the first one read
	case d > 0:
		msg.Lost = uint32(d)
	}
	m.began, m.seq, m.hn = true, m.cur+1, 0
	return msg
}
