package session_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/secure"
	"github.com/shoalnet/shoal/session"
)

// TestLabSecurity runs an encrypted, authenticated and signed transfer
// (the keyed receiver trusts only the sender's public key) over real
// multicast: the receiver with the key gets every byte while a fourth host
// that sniffed the sender's ids injects forged data, EOT, SQUELCH and a
// NORM_INFO naming "../../etc/passwd"; every forgery is counted. A receiver
// with the wrong key and one without a key get nothing and know why within
// a second.
func TestLabSecurity(t *testing.T) {
	l := lab.New(t, 5)
	group := netip.MustParseAddrPort("239.77.0.15:6215")
	key := secure.GroupKey{ID: 1, Secret: [32]byte{1, 5}}
	cfg := func(k secure.GroupKey, enc bool) *secure.Config {
		return &secure.Config{Keys: secure.NewKeyring(k), Encrypt: enc}
	}
	signer := ed25519.NewKeyFromSeed(make([]byte, 32))
	goodSec := cfg(key, false)
	goodSec.Trusted = []crypto.PublicKey{signer.Public()}
	good := open(t, l.Hosts[1], session.Config{Group: group, Seed: 2, Security: goodSec})
	wrong := open(t, l.Hosts[2], session.Config{Group: group, Seed: 3, Security: cfg(secure.GroupKey{ID: 1}, false)})
	keyless := open(t, l.Hosts[3], session.Config{Group: group, Seed: 4})
	txSec := cfg(key, true)
	txSec.SigningKey = signer
	tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 1, NodeID: 0x77, Security: txSec})

	// The forger sniffs one packet for the instance id, then sends its
	// forgeries to the group while the transfer runs.
	var sniff, inject *net.UDPConn
	if err := l.Hosts[4].Do(func() (err error) {
		ifi, err := net.InterfaceByName(lab.Iface)
		if err != nil {
			return err
		}
		if sniff, err = net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(group)); err != nil {
			return err
		}
		inject, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(group))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sniff.Close()
	defer inject.Close()

	data := pattern(3<<20, 15)
	id, err := tx.SendBytes(context.Background(), data, []byte("real.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var inst uint16
	buf := make([]byte, 65536)
	_ = sniff.SetReadDeadline(time.Now().Add(5 * time.Second))
	for inst == 0 {
		n, err := sniff.Read(buf)
		if err != nil {
			t.Fatalf("sniffing: %v", err)
		}
		if h, _, err := framing.Peek(buf[:n]); err == nil && h.SourceID == 0x77 && h.Type == framing.TypeData {
			inst = binary.BigEndian.Uint16(buf[8:])
		}
	}
	sf := framing.SenderFields{InstanceID: inst, GRTT: framing.QuantizeRTT(10 * time.Second), Backoff: 4, GroupSize: 3}
	hdr := func(ty framing.Type) framing.Header { return framing.Header{Type: ty, SourceID: 0x77} }
	fti, _ := framing.AppendFTI(nil, 5, framing.FTI{TransferLength: uint64(len(data)), SymbolLength: 1400, MaxBlockLen: 64})
	forged := []framing.Message{
		{Type: framing.TypeData, Data: framing.Data{Header: hdr(framing.TypeData), SenderFields: sf, FECID: 5, ObjectID: uint16(id),
			PayloadID: framing.PayloadID{Block: 20}, Ext: fti, Payload: bytes.Repeat([]byte{0xee}, 1400)}},
		{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd), SenderFields: sf, Flavor: framing.FlavorEOT}},
		{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd), SenderFields: sf, Flavor: framing.FlavorSquelch,
			Ref: framing.SymbolRef{FECID: 5, ObjectID: uint16(id) + 1}, Content: framing.AppendObjectID(nil, uint16(id))}},
		{Type: framing.TypeInfo, Info: framing.Info{Header: hdr(framing.TypeInfo), SenderFields: sf, FECID: 5, ObjectID: uint16(id),
			Flags: framing.FlagInfo, Ext: fti, Content: []byte("../../etc/passwd")}},
	}
	sent := 0
	for i := range 50 {
		for _, m := range forged {
			m.Data.Sequence, m.Cmd.Sequence, m.Info.Sequence = uint16(i), uint16(i), uint16(i)
			b, err := m.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := inject.Write(b); err == nil {
				sent++
			}
		}
		time.Sleep(2 * time.Millisecond)
	}

	got := received(t, good, 1, 30*time.Second)
	if o := got["real.bin"]; o == nil || !bytes.Equal(o.Bytes(), data) {
		t.Fatalf("keyed receiver: objects %v", got)
	}
	if st := good.SecurityStats(); st.Malformed < uint64(sent) {
		t.Fatalf("keyed receiver counted %d forgeries of %d: %+v", st.Malformed, sent, st)
	}
	deadline := time.Now().Add(time.Second)
	for wrong.SecurityStats().BadTag == 0 || keyless.SecurityStats().Malformed == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal counted within a second: wrong key %+v, no key %+v", wrong.SecurityStats(), keyless.SecurityStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for name, s := range map[string]*session.Session{"wrong key": wrong, "no key": keyless} {
		if o := gotObject(s, 100*time.Millisecond); o != nil {
			t.Fatalf("%s receiver got an object: %+v", name, o.Info())
		}
	}
	t.Logf("keyed receiver %+v; wrong key %+v; no key %+v", good.SecurityStats(), wrong.SecurityStats(), keyless.SecurityStats())
}
