package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// TestLabMessages: whole messages written with WriteMessage come out of
// ReadMessage one by one, identical and in order, through 5 % loss, with
// no flushing (many messages to a segment, some over several) and with
// flushing at each message.
func TestLabMessages(t *testing.T) {
	l := lab.New(t, 2)
	if err := l.Hosts[1].SetLoss(5); err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for i := range 1500 {
		msgs = append(msgs, pattern(i*131%3000, byte(i)))
	}
	for i, mode := range []session.FlushMode{session.FlushNone, session.FlushPassive} {
		t.Run(fmt.Sprint("flush=", mode), func(t *testing.T) {
			group := netip.MustParseAddrPort(fmt.Sprintf("239.255.14.1:%d", 6140+i))
			rx := open(t, l.Hosts[1], session.Config{Group: group, Seed: 2})
			tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 1, Sender: sender.Config{Rate: 20e6, Parity: 8, AutoParity: 1}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, err := tx.OpenStream(ctx, session.StreamOptions{Flush: mode})
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for _, m := range msgs {
					if err := st.WriteMessage(ctx, m); err != nil {
						t.Error(err)
						return
					}
				}
				_ = st.Close()
			}()
			o, err := rx.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range msgs {
				got, err := o.ReadMessage(ctx)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("message %d: %d bytes, want %d (equal %v)", i, len(got), len(want), bytes.Equal(got, want))
				}
			}
			if _, err := o.ReadMessage(ctx); err != io.EOF {
				t.Fatalf("after the last message: %v, want io.EOF", err)
			}
			if n := rx.Stats().Receiver.NacksSent; n == 0 {
				t.Fatal("no NACK sent: the loss did not bite")
			}
		})
	}
}

// TestLabDeadlineMessages: a paced message stream (a message every 2 ms)
// with a 100 ms budget at both ends, through 10 % loss and a 300 ms outage
// at the receiver: the writer never waits, every message read is whole and
// in order, the ones missed are reported as lost, and none arrives later
// than the budget allows.
func TestLabDeadlineMessages(t *testing.T) {
	l := lab.New(t, 2)
	if err := l.Hosts[1].SetLoss(10); err != nil {
		t.Fatal(err)
	}
	const every, budget = 2 * time.Millisecond, 100 * time.Millisecond
	group := netip.MustParseAddrPort("239.255.14.2:6150")
	rx := open(t, l.Hosts[1], session.Config{Group: group, Seed: 2})
	tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 1,
		Sender: sender.Config{Rate: 10e6, Parity: 4, AutoParity: 1, BlockLen: 16, GRTT: 10 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := tx.OpenStream(ctx, session.StreamOptions{MaxAge: budget, Buffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sent []time.Time
	outageOver := make(chan struct{})
	outage := make(chan error, 1)
	go func() {
		// The outage, 300 ms from when the rule is in (changing it takes
		// a while on a busy machine, so the writer does not wait for it).
		time.Sleep(300 * time.Millisecond)
		err := l.Hosts[1].SetLoss(99) // the most the rule takes
		time.Sleep(300 * time.Millisecond)
		err = errors.Join(err, l.Hosts[1].SetLoss(10))
		close(outageOver)
		outage <- err
	}()
	type result struct {
		n    int
		late time.Duration
	}
	written := make(chan result, 1)
	go func() {
		start, late, end := time.Now(), time.Duration(0), time.Time{}
		i := 0
		for ; i < 3000 && (end.IsZero() || time.Now().Before(end)); i++ {
			due := start.Add(time.Duration(i) * every)
			time.Sleep(time.Until(due))
			select {
			case <-outageOver:
				if end.IsZero() {
					end = time.Now().Add(300 * time.Millisecond)
				}
			default:
			}
			msg := fmt.Appendf(nil, "message %d ", i)
			mu.Lock()
			sent = append(sent, time.Now())
			mu.Unlock()
			if err := st.WriteMessage(ctx, append(msg, pattern(200+i%900, byte(i))...)); err != nil {
				t.Error(err)
				break
			}
			late = max(late, time.Since(due))
		}
		_ = st.Close()
		written <- result{i, late}
	}()
	o, err := rx.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o.SetMaxAge(budget)
	got, lost, next := 0, 0, 0
	var worst time.Duration
	for {
		m, err := o.ReadMessage(ctx)
		var le *session.MessagesLostError
		if errors.As(err, &le) {
			lost += int(le.Lost)
			next += int(le.Lost)
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		want := fmt.Appendf(nil, "message %d ", next)
		if !bytes.HasPrefix(m, want) || !bytes.Equal(m[len(want):], pattern(200+next%900, byte(next))) {
			t.Fatalf("message %d: got %.20q", next, m)
		}
		mu.Lock()
		worst = max(worst, time.Since(sent[next]))
		mu.Unlock()
		got++
		next++
	}
	w := <-written
	if err := <-outage; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d written, %d read, %d lost, writer late at most %v, worst delivery %v", w.n, got, lost, w.late, worst)
	t.Logf("receiver %+v", rx.Stats().Receiver)
	t.Logf("sender %+v", tx.Stats().Sender)
	if got+lost != w.n || lost < 50 {
		t.Fatalf("%d read + %d lost, want %d with the outage's lost", got, lost, w.n)
	}
	if worst > 3*budget {
		t.Fatalf("a message took %v, budget %v", worst, budget)
	}
	// Generous: the machine is shared; a writer held back by flow control
	// would wait for the whole outage.
	if w.late > 150*time.Millisecond {
		t.Fatalf("the writer was held back %v", w.late)
	}
}
