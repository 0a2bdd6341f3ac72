package session_test

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/session"
)

// TestLabSameHostDefaults: a sender and two receivers in one process on one
// host, all with the default node id, and the receivers both get the
// object. With the host's address as every session's default id, the
// receivers took the sender's packets for their own looped-back feedback
// and got nothing.
func TestLabSameHostDefaults(t *testing.T) {
	l := lab.New(t, 1)
	h := l.Hosts[0]
	group := netip.MustParseAddrPort("239.255.5.9:6750")
	rx1 := open(t, h, session.Config{Group: group})
	rx2 := open(t, h, session.Config{Group: group})
	tx := open(t, h, session.Config{Group: group})
	data := pattern(300_000, 11)
	if _, err := tx.SendBytes(context.Background(), data, []byte("same host")); err != nil {
		t.Fatal(err)
	}
	for i, s := range []*session.Session{rx1, rx2} {
		o := gotObject(s, 10*time.Second)
		if o == nil || !bytes.Equal(o.Bytes(), data) || o.Info().Sender != tx.NodeID() {
			t.Fatalf("receiver %d on the sender's host: %+v", i, o)
		}
	}
	ids := map[session.NodeID]bool{tx.NodeID(): true, rx1.NodeID(): true, rx2.NodeID(): true}
	if len(ids) != 3 || ids[0] || ids[0xffffffff] {
		t.Fatalf("default node ids %v %v %v: want three distinct, none 0 or NORM_NODE_ANY",
			tx.NodeID(), rx1.NodeID(), rx2.NodeID())
	}
}
