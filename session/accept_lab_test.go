package session_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// smallObjects returns n objects of 4–7 KB, named obj-0 … obj-(n-1).
func smallObjects(n int) map[string][]byte {
	objs := map[string][]byte{}
	for i := range n {
		objs[fmt.Sprintf("obj-%d", i)] = pattern(4000+i*1237%3000, byte(i))
	}
	return objs
}

// acceptAll accepts objects until want distinct names arrived complete
// and checks that each arrives once and intact.
func acceptAll(t *testing.T, s *session.Session, want map[string][]byte, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got := map[string]int{}
	for len(got) < len(want) {
		o, err := s.Accept(ctx)
		if err != nil {
			t.Fatalf("accept: %v after %d of %d objects; %+v", err, len(got), len(want), s.Stats().Receiver)
		}
		if err := o.Wait(ctx); err != nil {
			t.Fatalf("object %d: %v after %d of %d objects", o.Info().ID, err, len(got), len(want))
		}
		name := string(o.Info().Info)
		if got[name]++; got[name] > 1 {
			t.Fatalf("%s delivered twice", name)
		}
		if !bytes.Equal(o.Bytes(), want[name]) {
			t.Fatalf("%s: %d bytes, differ from the %d sent", name, len(o.Bytes()), len(want[name]))
		}
	}
}

// sendAll sends objs (named obj-0, obj-1, …) in order and returns where
// the acknowledgement of the last one will be delivered.
func sendAll(ctx context.Context, t *testing.T, tx *session.Session, objs map[string][]byte) <-chan []session.AckResult {
	t.Helper()
	var last session.ObjectID
	for i := range len(objs) {
		name := fmt.Sprintf("obj-%d", i)
		id, err := tx.SendBytes(ctx, objs[name], []byte(name))
		if err != nil {
			t.Fatal(err)
		}
		last = id
	}
	acked := make(chan []session.AckResult, 1)
	go func() {
		res, _ := tx.WaitAck(ctx, last)
		acked <- res
	}()
	return acked
}

// TestLabSlowAccept: 2,500 small objects are sent while the application
// does not Accept for two seconds, then takes them one by one. None is
// lost, none arrives twice (the session used to drop what found its
// accept queue of 256 full), and the receiver acknowledges them.
func TestLabSlowAccept(t *testing.T) {
	l := lab.New(t, 2)
	group := netip.MustParseAddrPort("239.255.8.1:6950")
	rx := open(t, l.Hosts[1], session.Config{Group: group, Seed: 1})
	tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 2,
		Sender: sender.Config{Rate: 20e6, AckingNodes: []uint32{uint32(rx.NodeID())}, FlushTime: 20 * time.Second}})
	objs := smallObjects(2500)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acked := sendAll(ctx, t, tx, objs)
	time.Sleep(2 * time.Second)
	acceptAll(t, rx, objs, 20*time.Second)
	if res := <-acked; len(res) != 1 || res[0].Err != nil {
		t.Fatalf("acknowledgement: %+v", res)
	}
	if st := rx.Stats().Receiver; st.ObjectsAborted != 0 || st.AppBytes != 0 {
		t.Fatalf("receiver: %d objects aborted, %d bytes still counted for the application", st.ObjectsAborted, st.AppBytes)
	}
}

// TestLabAckWaitsForAccept: with a buffer budget smaller than what is
// sent, objects the application has not taken fill it; the receiver then
// defers new objects instead of losing them, and acknowledges nothing past
// them until the application takes what it holds. Then everything arrives
// and the watermark is acknowledged.
func TestLabAckWaitsForAccept(t *testing.T) {
	l := lab.New(t, 2)
	group := netip.MustParseAddrPort("239.255.8.2:6960")
	rx := open(t, l.Hosts[1], session.Config{Group: group, Seed: 1,
		Receiver: receiver.Config{MaxBufferBytes: 2 << 20}})
	tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 2,
		// The transmit cache holds everything: deferred objects are
		// repaired from it (a sender that purged them would squelch them,
		// and the watermark would fail instead).
		Sender: sender.Config{Rate: 20e6, AckingNodes: []uint32{uint32(rx.NodeID())}, FlushTime: 30 * time.Second, CacheObjects: 1024}})
	objs := smallObjects(800) // about 4.4 MB
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acked := sendAll(ctx, t, tx, objs)
	time.Sleep(1500 * time.Millisecond)
	select {
	case res := <-acked:
		t.Fatalf("acknowledged before the application took what fills the budget: %+v", res)
	default:
	}
	st := rx.Stats().Receiver
	if st.ObjectsDeferred == 0 || st.AppBytes == 0 {
		t.Fatalf("receiver deferred %d objects, holds %d bytes for the application; want both > 0", st.ObjectsDeferred, st.AppBytes)
	}
	start := time.Now()
	acceptAll(t, rx, objs, 20*time.Second)
	t.Logf("took the rest in %v; receiver %+v", time.Since(start), rx.Stats().Receiver)
	select {
	case res := <-acked:
		if len(res) != 1 || res[0].Err != nil {
			t.Fatalf("acknowledgement: %+v", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no acknowledgement after the application took every object")
	}
	if st := rx.Stats().Receiver; st.ObjectsAborted != 0 {
		t.Fatalf("%d objects aborted", st.ObjectsAborted)
	}
}
