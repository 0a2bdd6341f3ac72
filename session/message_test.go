package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/shoalnet/shoal/framing"
)

func framed(seq uint32, msg string) []byte {
	b := framing.AppendMsgHeader(nil, framing.MsgHeader{Seq: seq, Len: uint32(len(msg))})
	return append(b, msg...)
}

// TestReadMessage: ReadMessage returns each message whole, however the
// stream data was cut; where a gap cut messages it reports how many were
// lost (never a part of one) and resumes at the next message start; the
// sender's end of messages reports those lost at the very end.
func TestReadMessage(t *testing.T) {
	o := newObject(nil, ObjectInfo{Kind: KindStream})
	deliver := func(d []byte, msgStart int) {
		o.msgMark(msgStart)
		o.streamData(d)
	}
	// Three messages in one piece of data, then one over two pieces.
	three := slices.Concat(framed(0, "one"), framed(1, ""), framed(2, "three"))
	deliver(three, 0)
	four := framed(3, "four, over two")
	deliver(four[:5], 0)
	deliver(four[5:], -1)
	// Message 4 is cut by a gap; 5 is lost whole; 6 starts mid-piece.
	deliver(framed(4, "cut")[:9], 0)
	o.streamGap(100)
	tail := framed(5, "lost")[6:]
	deliver(slices.Concat(tail, framed(6, "six")), len(tail))
	// 7 is lost, 8 is empty; 9 and 10 are lost at the very end, which
	// only the sender's end of messages (its count, 11) can tell.
	o.streamGap(100)
	deliver(framed(8, ""), 0)
	o.streamGap(100)
	deliver(framing.AppendMsgHeader(nil, framing.MsgHeader{Seq: 11, Len: framing.MsgEndLen}), 0)
	close(o.done)

	var got []string
	for range 10 {
		m, err := o.ReadMessage(context.Background())
		var le *MessagesLostError
		switch {
		case errors.As(err, &le):
			if !errors.Is(err, ErrDataLost) {
				t.Fatalf("%v does not match ErrDataLost", err)
			}
			got = append(got, fmt.Sprintf("lost %d", le.Lost))
			continue
		case err == io.EOF:
			got = append(got, "EOF")
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, string(m))
			continue
		}
		break
	}
	if want := []string{"one", "", "three", "four, over two", "lost 2", "six", "lost 1", "", "lost 2", "EOF"}; !slices.Equal(got, want) {
		t.Fatalf("messages %q, want %q", got, want)
	}
}
