package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/secure"
)

// TestLabSecurityFiles: with --sign and either --sign-alg, what the bench
// sender seals, a receiver helper configured from the key and trust files
// opens; an unknown algorithm is refused.
func TestLabSecurityFiles(t *testing.T) {
	if _, err := setupLabSecurity(false, false, true, "rsa"); err == nil {
		t.Fatal("--sign-alg rsa accepted")
	}
	m := framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: framing.Header{Type: framing.TypeCmd, SourceID: 1},
		SenderFields: framing.SenderFields{InstanceID: 1}, Flavor: framing.FlavorEOT}}
	pkt, _ := m.Append(nil)
	for _, alg := range []string{"ed25519", "p256"} {
		cleanup, err := setupLabSecurity(false, false, true, alg)
		if err != nil {
			t.Fatal(err)
		}
		helperKey, helperTrust = labSec.keyFile, labSec.trustFile
		rx, err := helperSecurity()
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		s, err := secure.NewSealer(*labSec.cfg, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		o, err := secure.NewOpener(*rx)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := s.Seal(nil, pkt, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got, err := o.Open(sealed, time.Now()); err != nil || !bytes.Equal(got, pkt) || len(rx.Trusted) != 1 {
			t.Fatalf("%s: %v", alg, err)
		}
		cleanup()
	}
	helperKey, helperTrust, labSec.cfg, labSec.keyFile, labSec.trustFile = "", "", nil, "", ""
}
