package sessiontest_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/shoalnet/shoal/session"
	"github.com/shoalnet/shoal/session/sessiontest"
)

// Two sessions on an in-memory network: one sends, the other accepts. In a
// test, wrap this in testing/synctest.Test and the delays pass in virtual
// time.
func Example() {
	nw := sessiontest.NewNetwork(1)
	defer nw.Close()
	group := netip.MustParseAddrPort("239.255.1.1:6003")
	far := sessiontest.Node{Down: sessiontest.Link{Delay: 10 * time.Millisecond, Loss: 0.01}}
	rx, err := session.New(session.Config{Group: group, Conn: nw.Listen(group, far)})
	if err != nil {
		panic(err)
	}
	tx, err := session.New(session.Config{Group: group, Conn: nw.Listen(group, sessiontest.Node{})})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tx.SendBytes(ctx, []byte("hello, group"), []byte("greeting")); err != nil {
		panic(err)
	}
	obj, err := rx.Accept(ctx)
	if err != nil {
		panic(err)
	}
	if err := obj.Wait(ctx); err != nil {
		panic(err)
	}
	fmt.Printf("%s: %s\n", obj.Info().Info, obj.Bytes())

	stop, cancelStop := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelStop()
	_ = rx.Shutdown(stop)
	_ = tx.Shutdown(stop)
	// Output: greeting: hello, group
}
