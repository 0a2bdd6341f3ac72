package lab

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestBurstLoss: the nftables Gilbert model drops datagrams between two
// hosts at about the rate asked for, in bursts of about the mean length
// asked for (the figures are logged).
func TestBurstLoss(t *testing.T) {
	l := New(t, 2)
	tx, rx := l.Hosts[0], l.Hosts[1]
	const pct, burst, n = 5.0, 4.0, 30000
	if err := rx.SetBurstLoss(pct, burst); err != nil {
		t.Fatal(err)
	}
	var conn *net.UDPConn
	if err := rx.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: rx.IP4.AsSlice(), Port: 7400})
		if err == nil {
			err = conn.SetReadBuffer(8 << 20)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out *net.UDPConn
	if err := tx.Do(func() (err error) {
		out, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(rx.IP4, 7400)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	got := make([]bool, n)
	done := make(chan int)
	go func() {
		count := 0
		b := make([]byte, 64)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			k, err := conn.Read(b)
			if err != nil {
				done <- count
				return
			}
			if i := binary.BigEndian.Uint32(b[:k]); k >= 4 && int(i) < n && !got[i] {
				got[i] = true
				count++
			}
		}
	}()
	b := make([]byte, 100)
	for i := range n {
		binary.BigEndian.PutUint32(b, uint32(i))
		if _, err := out.Write(b); err != nil {
			t.Fatal(err)
		}
		if i%200 == 199 {
			time.Sleep(time.Millisecond) // stay far below what the socket holds
		}
	}
	received := <-done
	lost, bursts, run := 0, 0, 0
	for _, ok := range got {
		if !ok {
			lost++
			run++
			continue
		}
		if run > 0 {
			bursts++
			run = 0
		}
	}
	if run > 0 {
		bursts++
	}
	rate := float64(lost) / n * 100
	mean := float64(lost) / float64(max(bursts, 1))
	t.Logf("asked %.1f%% loss in bursts of %.1f: measured %.2f%% (%d of %d), %d bursts of mean length %.2f",
		pct, burst, rate, lost, n, bursts, mean)
	if received+lost != n {
		t.Fatalf("%d received + %d lost != %d", received, lost, n)
	}
	if rate < 3.5 || rate > 6.5 {
		t.Errorf("loss %.2f%%, want about %.1f%%", rate, pct)
	}
	if mean < 3.2 || mean > 5 {
		t.Errorf("mean burst %.2f, want about %.1f", mean, burst)
	}
}
