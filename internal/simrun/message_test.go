package simrun

import (
	"testing"
	"time"

	"github.com/shoalnet/shoal/sender"
)

// TestMessageStream writes whole messages (message mode) in every flush
// mode, through loss, and checks with a receiver.MessageReader that every
// receiver reads every message back whole, exactly once and in order: with
// FlushNone several messages share a segment and messages span segments,
// so the framing inside the stream is what finds them.
func TestMessageStream(t *testing.T) {
	for _, c := range []struct {
		name   string
		mode   sender.FlushMode
		maxLen int
	}{
		{"none-small", sender.FlushNone, 300},
		{"none", sender.FlushNone, 5000},
		{"passive", sender.FlushPassive, 3000},
		{"active-small", sender.FlushActive, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			const n = 500
			res := run(t, Scenario{Seed: 41, Receivers: 3, Loss: 0.05,
				Stream: &Stream{Messages: n, MaxLen: c.maxLen, Mode: c.mode, Buffer: 1 << 20, Framed: true},
				Sender: sender.Config{Rate: 20e6, Parity: 8, AutoParity: 1}})
			if res.StreamGaps != 0 || res.Messages != 3*n || res.MessagesLost != 0 {
				t.Fatalf("%d gaps, %d messages delivered, %d lost; want 0, %d, 0", res.StreamGaps, res.Messages, res.MessagesLost, 3*n)
			}
		})
	}
}

// TestMessageStreamLateJoiner: receivers that join a message stream in
// progress start at a message boundary and count the messages they
// missed; each message after that is whole.
func TestMessageStreamLateJoiner(t *testing.T) {
	const n = 600
	res := run(t, Scenario{Seed: 42, Receivers: 3, Late: 2, LateAt: 300 * time.Millisecond, Loss: 0.02,
		Stream: &Stream{Messages: n, MaxLen: 2000, Mode: sender.FlushNone, Buffer: 32 << 10, Framed: true, Interval: time.Millisecond},
		Sender: sender.Config{Rate: 20e6, Parity: 4, AutoParity: 1, BlockLen: 8}})
	if res.MessagesLost == 0 || res.StreamGaps == 0 {
		t.Fatalf("late joiners lost no messages (%d, %d gaps): the test lost its point", res.MessagesLost, res.StreamGaps)
	}
	if res.Messages+res.MessagesLost != 3*n {
		t.Fatalf("%d delivered + %d lost, want %d", res.Messages, res.MessagesLost, 3*n)
	}
}

// TestMessageStreamOverrun: a partially reliable stream whose ring is
// overrun skips data; the message reader drops every message a gap cut
// and counts it, resumes at the next message, and never delivers a part.
func TestMessageStreamOverrun(t *testing.T) {
	const n = 800
	res := run(t, Scenario{Seed: 43, Receivers: 3, Loss: 0.05,
		Stream: &Stream{Messages: n, MaxLen: 3000, Mode: sender.FlushNone, Buffer: 96 << 10, Framed: true},
		Sender: sender.Config{Rate: 50e6, Parity: 0, StreamPartial: true}})
	if res.StreamGaps == 0 || res.MessagesLost == 0 {
		t.Fatalf("%d gaps, %d messages lost: the test lost its point", res.StreamGaps, res.MessagesLost)
	}
	if res.Messages+res.MessagesLost != 3*n {
		t.Fatalf("%d delivered + %d lost, want %d", res.Messages, res.MessagesLost, 3*n)
	}
}
