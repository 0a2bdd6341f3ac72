package session_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// The examples run a sender and a receiver in one process on the loopback
// interface, so that they run anywhere without a network; on a LAN, leave
// Interface empty (or name the interface) and run each side on its own
// host.

// Send a file to every receiver, which writes it under its directory.
func ExampleSession_SendPath() {
	group := netip.MustParseAddrPort("239.255.211.1:17201")
	dir, _ := os.MkdirTemp("", "shoal-example")
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src.txt")
	_ = os.WriteFile(src, []byte("quarterly figures\n"), 0o644)
	inbox := filepath.Join(dir, "inbox")
	_ = os.Mkdir(inbox, 0o755)

	// The receiver writes files under inbox, named as the sender names them.
	rx, err := session.New(session.Config{Group: group, Interface: "lo", Dir: inbox})
	if err != nil {
		log.Fatal(err)
	}
	defer rx.Close()
	tx, err := session.New(session.Config{Group: group, Interface: "lo"})
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Close() // flushes: receivers may still repair

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tx.SendPath(ctx, src, "reports/q3.txt"); err != nil {
		log.Fatal(err)
	}

	obj, err := rx.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := obj.Wait(ctx); err != nil { // until the file is whole
		log.Fatal(err)
	}
	rel, _ := filepath.Rel(inbox, obj.Path())
	b, _ := os.ReadFile(obj.Path())
	fmt.Printf("%s: %s", filepath.ToSlash(rel), b)
	// Output: reports/q3.txt: quarterly figures
}

// Receive whatever the group's senders send, in the order it starts.
func ExampleSession_Accept() {
	group := netip.MustParseAddrPort("239.255.211.2:17202")
	rx, err := session.New(session.Config{Group: group, Interface: "lo"})
	if err != nil {
		log.Fatal(err)
	}
	defer rx.Close()
	tx, err := session.New(session.Config{Group: group, Interface: "lo"})
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{"a.txt", "b.txt"} {
		if _, err := tx.SendBytes(ctx, []byte("contents of "+name), []byte(name)); err != nil {
			log.Fatal(err)
		}
	}

	for range 2 {
		obj, err := rx.Accept(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if err := obj.Wait(ctx); err != nil {
			log.Fatal(err)
		}
		// Without Config.Dir or FileSink, objects are kept in memory.
		fmt.Printf("%v %s from a sender: %q\n", obj.Info().Kind, obj.Info().Info, obj.Bytes())
	}
	// Output:
	// data a.txt from a sender: "contents of a.txt"
	// data b.txt from a sender: "contents of b.txt"
}

// Stream messages; the receiver reads them as one byte stream with
// io.Copy, passing over any data lost for good.
func ExampleSession_OpenStream() {
	group := netip.MustParseAddrPort("239.255.211.3:17203")
	rx, err := session.New(session.Config{Group: group, Interface: "lo"})
	if err != nil {
		log.Fatal(err)
	}
	defer rx.Close()
	tx, err := session.New(session.Config{Group: group, Interface: "lo"})
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := tx.OpenStream(ctx, session.StreamOptions{Info: []byte("log")})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for i := range 3 {
			fmt.Fprintf(st, "line %d\n", i)
			st.Flush() // a message ends here: send it now
		}
		st.Close() // the receiver reads io.EOF
	}()

	obj, err := rx.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	obj.SetSkipGaps(true) // gaps are StreamGap events, not Read errors
	var got strings.Builder
	if _, err := io.Copy(&got, obj); err != nil {
		log.Fatal(err)
	}
	fmt.Print(got.String())
	// Output:
	// line 0
	// line 1
	// line 2
}

// Wait until named receivers confirm they hold everything sent.
func ExampleSession_WaitAck() {
	group := netip.MustParseAddrPort("239.255.211.4:17204")
	rx, err := session.New(session.Config{Group: group, Interface: "lo", NodeID: 0x0a000002})
	if err != nil {
		log.Fatal(err)
	}
	defer rx.Close()
	tx, err := session.New(session.Config{Group: group, Interface: "lo",
		Sender: sender.Config{AckingNodes: []uint32{0x0a000002}}})
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last session.ObjectID
	for i := range 3 {
		if last, err = tx.SendBytes(ctx, make([]byte, 10_000), []byte(fmt.Sprint(i))); err != nil {
			log.Fatal(err)
		}
	}
	results, err := tx.WaitAck(ctx, last) // last and everything before it
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		fmt.Printf("node %v acknowledged: %v\n", r.Node, r.Err == nil)
	}
	// Output: node 0a000002 acknowledged: true
}
