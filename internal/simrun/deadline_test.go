package simrun

import (
	"testing"
	"time"

	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

// TestDeadlineStream: a paced message stream (a media source: a message
// every 2 ms) with a 150 ms maximum age at both ends, while receiver 0's
// link is down for 400 ms and every link loses 3 %. The writer is never
// held back; receiver 0 gives up what it missed, reports it as lost
// messages, and goes on with the messages after the outage without
// waiting for the old data; every message delivered is whole and in
// order and arrives within the budget (plus the time to notice the
// hole). The same outage without a maximum age is repaired instead.
func TestDeadlineStream(t *testing.T) {
	const n, maxAge = 1000, 150 * time.Millisecond
	sc := Scenario{Seed: 51, Receivers: 3, Loss: 0.03, OutageFrom: 500 * time.Millisecond, OutageTo: 900 * time.Millisecond,
		Stream:   &Stream{Messages: n, MaxLen: 1200, Mode: sender.FlushPassive, Buffer: 1 << 20, Framed: true, Interval: 2 * time.Millisecond, MaxAge: maxAge},
		Sender:   sender.Config{Rate: 20e6, Parity: 4, AutoParity: 1, BlockLen: 16, GRTT: 20 * time.Millisecond},
		Receiver: receiver.Config{StreamMaxAge: maxAge}}
	res := run(t, sc)
	t.Logf("deadline: %d delivered, %d lost, %d gaps, writer late %v, max delay %v, squelches %d, stale refused %d, repairs %d+%d, nacks %d, fec %d",
		res.Messages, res.MessagesLost, res.StreamGaps, res.WriterLate, res.MaxMsgDelay, res.Sender.Squelches, res.Sender.StaleRefused,
		res.Sender.RepairSource, res.Sender.RepairParity, res.Sender.NacksReceived, res.Receivers[1].FECRecovered)
	if res.MessagesLost < 100 || res.StreamGaps == 0 {
		t.Fatalf("%d messages lost in %d gaps: the outage did not cost the messages it should", res.MessagesLost, res.StreamGaps)
	}
	if res.Messages+res.MessagesLost != 3*n {
		t.Fatalf("%d delivered + %d lost, want %d", res.Messages, res.MessagesLost, 3*n)
	}
	if res.WriterLate > 5*time.Millisecond {
		t.Fatalf("the writer was held back %v", res.WriterLate)
	}
	if res.MaxMsgDelay > 2*maxAge {
		t.Fatalf("a message took %v to arrive, budget %v", res.MaxMsgDelay, maxAge)
	}

	// Without the maximum age the receiver waits for (and gets) it all.
	sc.Stream.MaxAge, sc.Receiver.StreamMaxAge = 0, 0
	res = run(t, sc)
	t.Logf("reliable: %d delivered, %d lost, writer late %v, max delay %v", res.Messages, res.MessagesLost, res.WriterLate, res.MaxMsgDelay)
	if res.MessagesLost != 0 || res.Messages != 3*n {
		t.Fatalf("reliable stream: %d delivered, %d lost", res.Messages, res.MessagesLost)
	}
	if res.MaxMsgDelay < 300*time.Millisecond {
		t.Fatalf("max delay %v: the outage was not waited out, the test lost its point", res.MaxMsgDelay)
	}
}

// TestTimedBlocks: a paced media stream (a message every 5 ms, blocks of
// 8, three proactive parity per block) to receivers that never NACK, over
// a 60 ms one-way path (two 30 ms links) with 3 % loss. Closing blocks after 10 ms
// (padding the rest) sends each block's parity within 10 ms of its first
// data, so FEC repairs a loss in about that, far below a round trip; with
// blocks that close only when full the same repair waits for the block to
// fill (35 ms more).
func TestTimedBlocks(t *testing.T) {
	const n = 600
	sc := Scenario{Seed: 52, Receivers: 3, Loss: 0.03, Delay: 30 * time.Millisecond,
		Stream:   &Stream{Messages: n, MaxLen: 1000, Mode: sender.FlushPassive, Buffer: 1 << 20, Framed: true, Interval: 5 * time.Millisecond, MaxAge: 300 * time.Millisecond, BlockTime: 10 * time.Millisecond},
		Sender:   sender.Config{Rate: 20e6, Parity: 4, AutoParity: 3, BlockLen: 8, GRTT: 120 * time.Millisecond},
		Receiver: receiver.Config{Silent: true, StreamMaxAge: 300 * time.Millisecond}}
	timed := run(t, sc)
	sc.Stream.BlockTime = 0
	full := run(t, sc)
	fec := func(r Result) (n uint64) {
		for _, rx := range r.Receivers {
			n += rx.FECRecovered
		}
		return n
	}
	t.Logf("timed: %d delivered, %d lost, fec %d, max delay %v, %d blocks closed on time, %d padding",
		timed.Messages, timed.MessagesLost, fec(timed), timed.MaxMsgDelay, timed.Sender.TimedBlocks, timed.Sender.PaddingSegments)
	t.Logf("full:  %d delivered, %d lost, fec %d, max delay %v", full.Messages, full.MessagesLost, fec(full), full.MaxMsgDelay)
	if timed.Sender.TimedBlocks == 0 || fec(timed) < 20 {
		t.Fatalf("%d blocks closed on time, %d symbols recovered by FEC: the test lost its point", timed.Sender.TimedBlocks, fec(timed))
	}
	if timed.Messages+timed.MessagesLost != 3*n || timed.MessagesLost > 3 {
		t.Fatalf("timed blocks: %d delivered, %d lost of %d", timed.Messages, timed.MessagesLost, 3*n)
	}
	// One way, the block time, and a few packets' send time.
	if timed.MaxMsgDelay > 60*time.Millisecond+10*time.Millisecond+5*time.Millisecond {
		t.Fatalf("timed blocks: a message took %v", timed.MaxMsgDelay)
	}
	if full.MaxMsgDelay < timed.MaxMsgDelay+20*time.Millisecond {
		t.Fatalf("full blocks: max delay %v, not longer than with timed blocks (%v): the test lost its point", full.MaxMsgDelay, timed.MaxMsgDelay)
	}
}
