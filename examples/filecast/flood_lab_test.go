package main

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/secure"
)

// flood sends packets sealed under a key the receivers do not hold (so
// each fails authentication) to group from h, about one every 500 µs,
// until stop is closed or limit passes: bounded in packets and time.
func flood(t testing.TB, h *lab.Host, group string, stop <-chan struct{}, limit time.Duration) {
	var conn *net.UDPConn
	if err := h.Do(func() (err error) {
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(group)))
		return err
	}); err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()
	sl, err := secure.NewSealer(secure.Config{Keys: secure.NewKeyring(secure.GroupKey{ID: 1, Secret: [32]byte{0xba, 0xd}})}, time.Now())
	if err != nil {
		t.Error(err)
		return
	}
	sf := framing.SenderFields{InstanceID: 7, GRTT: 10, Backoff: 4, GroupSize: 3}
	end := time.Now().Add(limit)
	for i := 0; i < 20000 && time.Now().Before(end); i++ {
		select {
		case <-stop:
			return
		default:
		}
		m := framing.Message{Type: framing.TypeData, Data: framing.Data{Header: framing.Header{Type: framing.TypeData, SourceID: 0x66, Sequence: uint16(i)},
			SenderFields: sf, FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Block: uint32(i / 32), Symbol: uint16(i % 32)}, Payload: bytes.Repeat([]byte{0xee}, 1000)}}
		b, err := m.Append(nil)
		if err == nil {
			b, err = sl.Seal(nil, b, time.Now())
		}
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = conn.Write(b)
		time.Sleep(500 * time.Microsecond)
	}
}

// TestLabRecvSurvivesFlood: a flood of packets that fail authentication
// does not end filecast recv. Alone, it lets the receiver run to its idle
// timeout, which it then ends with a non-zero exit naming the likely
// cause; followed by the real sender, the receiver gets the file and exits
// 0.
func TestLabRecvSurvivesFlood(t *testing.T) {
	l := lab.New(t, 3)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "group.key")
	if code := run([]string{"keygen", "--out", keyFile}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatal("keygen failed")
	}

	t.Run("flood-only", func(t *testing.T) {
		group := "239.255.10.15:7515"
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { flood(t, l.Hosts[2], group, stop, 5*time.Second) })
		start := time.Now()
		code, _, errOut := recvIn(l.Hosts[1], "--dir", t.TempDir(), "--group", group, "--iface", lab.Iface, "--key", keyFile, "--idle-timeout", "2500ms")
		close(stop)
		wg.Wait()
		if el := time.Since(start); el < 2500*time.Millisecond {
			t.Fatalf("the flood ended the receiver after %v (before its idle timeout): %q", el, errOut)
		}
		if code == 0 || !strings.Contains(errOut, "wrong or missing key") {
			t.Fatalf("exit %d, %q", code, errOut)
		}
	})

	t.Run("flood-then-sender", func(t *testing.T) {
		group := "239.255.10.15:7516"
		src := filepath.Join(dir, "f.bin")
		data := bytes.Repeat([]byte("shoal"), 100_000)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { flood(t, l.Hosts[2], group, stop, 10*time.Second) })
		rdir := t.TempDir()
		var code int
		var errOut string
		wg.Go(func() {
			code, _, errOut = recvIn(l.Hosts[1], "--dir", rdir, "--group", group, "--iface", lab.Iface, "--key", keyFile, "--count", "1", "--idle-timeout", "8s", "--linger", "0")
		})
		time.Sleep(1500 * time.Millisecond) // long enough for the receiver to give up, as it used to
		var out, sendErr bytes.Buffer
		var scode int
		_ = l.Hosts[0].Do(func() error {
			scode = run([]string{"send", "--group", group, "--iface", lab.Iface, "--rate", "50M", "--key", keyFile, src}, &out, &sendErr)
			return nil
		})
		close(stop)
		wg.Wait()
		if scode != 0 {
			t.Fatalf("send: exit %d: %s", scode, sendErr.String())
		}
		if got, err := os.ReadFile(filepath.Join(rdir, "f.bin")); code != 0 || err != nil || !bytes.Equal(got, data) {
			t.Fatalf("receiver under a flood: exit %d, file %v (equal %v): %q", code, err, bytes.Equal(got, data), errOut)
		}
	})
}
