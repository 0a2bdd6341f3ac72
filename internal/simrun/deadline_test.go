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
