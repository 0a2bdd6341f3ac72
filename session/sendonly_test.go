package session_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/shoalnet/shoal/internal/simrun"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// TestSendOnly: a SendOnly session delivers and is acknowledged as any
// other, while what other senders put on the group, forged ones included,
// and its own packets looped back never reach it: on Linux the socket
// filter drops them in the kernel, so the session reads only feedback.
func TestSendOnly(t *testing.T) {
	const txNode, rxNode = 0x0a000001, 0x0b000001
	g := loopGroup()
	rx := loop(t, session.Config{Group: g, NodeID: rxNode})
	tx := loop(t, session.Config{Group: g, NodeID: txNode, SendOnly: true,
		Sender: sender.Config{Rate: 20e6, AckingNodes: []uint32{rxNode}}})

	// A host forging 64 senders' data on the group meanwhile.
	fc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := ipv4.NewPacketConn(fc).SetMulticastInterface(lo); err != nil {
		t.Skipf("no multicast on the loopback interface: %v", err)
	}
	a, err := simrun.NewAttack(simrun.HostileFakeSenders, 1)
	if err != nil {
		t.Fatal(err)
	}
	const forged = 300
	for range forged {
		if _, err := fc.WriteToUDP(a.Next(), net.UDPAddrFromAddrPort(g)); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	data := bytes.Repeat([]byte("send only "), 100_000)
	id, err := tx.SendBytes(ctx, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for {
		o, err := rx.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if o.Info().Sender != txNode {
			_ = o.Close()
			continue
		}
		if err := o.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(o.Bytes(), data) {
			t.Fatalf("%d bytes received, not the %d sent", len(o.Bytes()), len(data))
		}
		break
	}
	res, err := tx.WaitAck(ctx, id)
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("acknowledgement: %v %v", res, err)
	}
	ts, rs := tx.Stats(), rx.Stats()
	if rs.PacketsReceived < ts.PacketsSent+forged/2 {
		t.Fatalf("the receiver heard %d packets; the sender sent %d and %d were forged", rs.PacketsReceived, ts.PacketsSent, forged)
	}
	if ts.Receiver.Packets != 0 {
		t.Fatalf("the send-only session's receiver engine handled %d packets, want none", ts.Receiver.Packets)
	}
	// Only feedback gets through: a handful of ACKs and NACKs, not the
	// sender's own packets looped back nor the forged ones.
	if ts.PacketsReceived > ts.PacketsSent/10 {
		t.Fatalf("the send-only session read %d packets, having sent %d: the filter let others through", ts.PacketsReceived, ts.PacketsSent)
	}
	t.Logf("sender: %d packets sent, %d read; receiver: %d read", ts.PacketsSent, ts.PacketsReceived, rs.PacketsReceived)
}
