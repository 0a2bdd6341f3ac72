package receiver

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/shoalnet/shoal/framing"
)

// frame builds the message-mode bytes of messages first..first+len-1.
func frame(first uint32, msgs ...[]byte) []byte {
	var b []byte
	for i, m := range msgs {
		b = framing.AppendMsgHeader(b, framing.MsgHeader{Seq: first + uint32(i), Len: uint32(len(m))})
		b = append(b, m...)
	}
	return b
}

// feedAll feeds d to m and collects copies of the messages.
func feedAll(m *MessageReader, d []byte, msgStart int, got *[]Message) {
	for len(d) > 0 {
		n, msg, ok := m.Feed(d, msgStart)
		d = d[n:]
		if msgStart >= n {
			msgStart -= n
		} else {
			msgStart = -1
		}
		if ok {
			msg.Data = append([]byte(nil), msg.Data...)
			*got = append(*got, msg)
		}
	}
}

func TestMessageReaderSplitsAndJoins(t *testing.T) {
	msgs := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("b"), 3000), []byte("ccc"), []byte("dd")}
	all := frame(0, msgs...)
	// Every way of cutting the bytes into pieces of one size: messages
	// share pieces, span them, and headers are split.
	for _, size := range []int{1, 3, 7, 8, 9, 100, 1400, len(all)} {
		m := NewMessageReader(0)
		var got []Message
		for off := 0; off < len(all); off += size {
			start := -1
			if off == 0 {
				start = 0
			}
			feedAll(m, all[off:min(off+size, len(all))], start, &got)
		}
		if len(got) != len(msgs) {
			t.Fatalf("size %d: %d messages, want %d", size, len(got), len(msgs))
		}
		for i, g := range got {
			if g.Seq != uint32(i) || g.Lost != 0 || !bytes.Equal(g.Data, msgs[i]) {
				t.Fatalf("size %d: message %d is %d bytes, seq %d lost %d", size, i, len(g.Data), g.Seq, g.Lost)
			}
		}
	}
}

func TestMessageReaderGapAndLateJoin(t *testing.T) {
	m := NewMessageReader(0)
	var got []Message
	// Joining late, in the middle of message 4: skipped up to the next
	// marked start, where message 5 begins.
	tail := frame(4, []byte("message four"))[10:]
	five := frame(5, []byte("five"), []byte("six"))
	feedAll(m, append(append([]byte(nil), tail...), five...), len(tail), &got)
	// Message 7 is cut by a gap: dropped whole; 9 resumes.
	feedAll(m, frame(7, []byte("seven, cut"))[:12], 0, &got)
	m.Gap()
	feedAll(m, []byte("of eight, no start mark"), -1, &got)
	feedAll(m, frame(9, []byte("nine")), 0, &got)
	want := []struct {
		seq, lost uint32
		data      string
	}{{5, 5, "five"}, {6, 0, "six"}, {9, 2, "nine"}}
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if g := got[i]; g.Seq != w.seq || g.Lost != w.lost || string(g.Data) != w.data {
			t.Errorf("message %d: seq %d lost %d %q, want %d %d %q", i, g.Seq, g.Lost, g.Data, w.seq, w.lost, w.data)
		}
	}
}

func TestMessageReaderBadFraming(t *testing.T) {
	m := NewMessageReader(100)
	var got []Message
	// A length over the limit, then a start mark inside a message: both
	// are framing errors, dropped, and reading resumes at the next start.
	feedAll(m, frame(0, make([]byte, 101)), 0, &got)
	feedAll(m, frame(1, []byte("0123456789"))[:12], 0, &got)
	feedAll(m, frame(2, []byte("ok")), 0, &got)
	if m.FramingErrors() != 2 || len(got) != 1 || string(got[0].Data) != "ok" || got[0].Lost != 2 {
		t.Fatalf("%d framing errors, messages %s", m.FramingErrors(), fmt.Sprint(got))
	}
}

// TestMessageReaderEnd: the sender's end of messages reports the
// messages lost at the very end of a stream (here 2 and 3, after a gap),
// and is no message itself; one with nothing lost says so too.
func TestMessageReaderEnd(t *testing.T) {
	end := func(n uint32) []byte {
		return framing.AppendMsgHeader(nil, framing.MsgHeader{Seq: n, Len: framing.MsgEndLen})
	}
	m := NewMessageReader(0)
	var got []Message
	feedAll(m, frame(0, []byte("zero"), []byte("one")), 0, &got)
	m.Gap()
	feedAll(m, end(4), 0, &got)
	if len(got) != 3 || !got[2].End || got[2].Lost != 2 || got[2].Seq != 4 || got[2].Data != nil || got[1].End {
		t.Fatalf("got %+v, want two messages and the end with 2 lost", got)
	}
	m, got = NewMessageReader(0), nil
	feedAll(m, append(frame(0, []byte("zero")), end(1)...), 0, &got)
	if len(got) != 2 || !got[1].End || got[1].Lost != 0 || m.FramingErrors() != 0 {
		t.Fatalf("got %+v, %d framing errors; want a message and the end, nothing lost", got, m.FramingErrors())
	}
}
