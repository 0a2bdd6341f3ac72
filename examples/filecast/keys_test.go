package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/secure"
)

// TestKeygen: keygen writes a group key and a signing key pair into new
// files (the secrets with mode 0600), never overwrites one, and the
// --key, --sign-key and --trust flags read them back; malformed files and
// --encrypt without a key are refused with a message.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	group, sign := filepath.Join(dir, "group.key"), filepath.Join(dir, "me.key")
	var out, errOut bytes.Buffer
	if code := run([]string{"keygen", "--out", group, "--id", "7"}, &out, &errOut); code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut.String())
	}
	if code := run([]string{"keygen", "--sign", "--out", sign}, &out, &errOut); code != 0 {
		t.Fatalf("keygen --sign: %d %s", code, errOut.String())
	}
	for _, f := range []string{group, sign} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	if code := run([]string{"keygen", "--out", group}, &out, &errOut); code == 0 {
		t.Fatal("keygen overwrote a key file")
	}
	f := securityFlags{key: group, signKey: sign, trust: sign + ".pub", encrypt: true}
	c, err := f.config("239.1.1.1:6003")
	if err != nil {
		t.Fatal(err)
	}
	k, ok := c.Keys.Current()
	if !ok || k.ID != 7 || k.Secret == [32]byte{} || !c.Encrypt || len(c.Trusted) != 1 ||
		!bytes.Equal(c.Trusted[0].(ed25519.PublicKey), c.SigningKey.Public().(ed25519.PublicKey)) {
		t.Fatalf("config %+v", c)
	}

	// Rotation: a file with two keys; the first is the one sealed with.
	two := filepath.Join(dir, "two.key")
	raw, _ := os.ReadFile(group)
	os.WriteFile(two, append([]byte("shoal-group-key 8 "+strings.Repeat("ab", 32)+"\n"), raw...), 0o600)
	f = securityFlags{key: two}
	if c, err = f.config("239.1.1.1:6003"); err != nil {
		t.Fatal(err)
	}
	if k, _ := c.Keys.Current(); k.ID != 8 {
		t.Fatalf("current key %d", k.ID)
	}
	if _, ok := c.Keys.Key(7); !ok {
		t.Fatal("second key not loaded")
	}

	// A passphrase file gives every node the same key.
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("a long enough passphrase\n"), 0o600)
	keyFromPassphrase = func(p []byte, ctx string, id uint8) (secure.GroupKey, error) {
		k := secure.GroupKey{ID: id}
		copy(k.Secret[:], append(p, ctx...))
		return k, nil
	}
	defer func() { keyFromPassphrase = secure.KeyFromPassphrase }()
	f = securityFlags{passFile: pass}
	c1, err1 := f.config("239.1.1.1:6003")
	c2, err2 := f.config("239.1.1.1:6003")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	k1, _ := c1.Keys.Current()
	k2, _ := c2.Keys.Current()
	if k1 != k2 || k1.Secret == [32]byte{} {
		t.Fatalf("passphrase keys %x %x", k1.Secret, k2.Secret)
	}

	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("shoal-group-key 1 abcd\n"), 0o600)
	for _, f := range []securityFlags{{key: bad}, {encrypt: true}, {key: group, passFile: pass}, {key: filepath.Join(dir, "none")}, {trust: group}} {
		if _, err := f.config("239.1.1.1:6003"); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}
	if c, err := (&securityFlags{}).config("239.1.1.1:6003"); c != nil || err != nil {
		t.Fatalf("no flags: %v %v", c, err)
	}
}

// TestWatchAuth: a receiver that for a second hears only packets it cannot
// authenticate says why, once, and keeps listening; one that
// authenticated anything, or heard nothing, says nothing of the kind.
// Refusals are reported at the given period, with their causes.
func TestWatchAuth(t *testing.T) {
	for _, c := range []struct {
		keyed bool
		st    secure.Stats
		warn  bool
		msg   string
	}{
		{true, secure.Stats{BadTag: 5}, true, "wrong or missing key"},
		{true, secure.Stats{UnknownKey: 5}, true, "wrong or missing key"},
		{false, secure.Stats{Malformed: 5}, true, "no --key"},
		{true, secure.Stats{BadTag: 5, Opened: 1}, false, ""},
		{true, secure.Stats{Malformed: 5}, false, ""}, // plain forgeries alone are no sign of a wrong key
		{false, secure.Stats{}, false, ""},
	} {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var errOut bytes.Buffer
			var st secure.Stats
			stats := func() secure.Stats {
				mu.Lock()
				defer mu.Unlock()
				st.BadTag, st.UnknownKey, st.Malformed = st.BadTag+c.st.BadTag, st.UnknownKey+c.st.UnknownKey, st.Malformed+c.st.Malformed
				st.Opened = c.st.Opened
				return st
			}
			ctx, cancel := context.WithTimeout(context.Background(), 1600*time.Millisecond)
			defer cancel()
			watchAuth(ctx, stats, c.keyed, &errOut, 20*time.Millisecond, 500*time.Millisecond)
			out := errOut.String()
			if n := strings.Count(out, "still listening"); c.warn != (n == 1) || n > 1 || !strings.Contains(out, c.msg) {
				t.Errorf("%+v: %q", c, out)
			}
			if _, bad := refusedOnly(stats(), c.keyed); bad != c.warn {
				t.Errorf("%+v: refusedOnly %v", c, bad)
			}
			// Refusals go on: reported at each period, not at each packet.
			if n := strings.Count(out, "refused "); (c.st.Rejected() > 0) != (n >= 2) || n > 3 {
				t.Errorf("%+v: %d refusal reports: %q", c, n, out)
			}
		})
	}
}

// TestFitSegment: signatures shrink the default segment, not an explicit one.
func TestFitSegment(t *testing.T) {
	signed := &secure.Config{Keys: secure.NewKeyring(), SigningKey: make(ed25519.PrivateKey, 64)}
	for _, c := range []struct {
		args []string
		sec  *secure.Config
		want int
	}{
		{nil, nil, 1400},
		{nil, &secure.Config{Keys: secure.NewKeyring()}, 1400},
		{nil, signed, 1400 - (signed.Overhead() - 32)},
		{[]string{"--segment", "1400"}, signed, 1400},
	} {
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		seg := fs.Int("segment", 1400, "")
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if got := fitSegment(fs, *seg, c.sec); got != c.want {
			t.Errorf("%v: %d, want %d", c.args, got, c.want)
		}
	}
}

// TestKeygenP256: keygen --sign --sign-alg p256 writes an ECDSA P-256
// pair; --sign-key and --trust read it (a --trust file may mix both kinds),
// and what the one signs the other accepts.
func TestKeygenP256(t *testing.T) {
	dir := t.TempDir()
	sign, ed := filepath.Join(dir, "p.key"), filepath.Join(dir, "e.key")
	var out, errOut bytes.Buffer
	if code := run([]string{"keygen", "--sign", "--sign-alg", "p256", "--out", sign}, &out, &errOut); code != 0 {
		t.Fatalf("keygen --sign-alg p256: %d %s", code, errOut.String())
	}
	if code := run([]string{"keygen", "--sign", "--out", ed}, &out, &errOut); code != 0 {
		t.Fatalf("keygen --sign: %d %s", code, errOut.String())
	}
	if code := run([]string{"keygen", "--sign", "--sign-alg", "rsa", "--out", filepath.Join(dir, "x")}, &out, &errOut); code != 2 {
		t.Fatalf("--sign-alg rsa: exit %d", code)
	}
	trust := filepath.Join(dir, "trust")
	a, _ := os.ReadFile(ed + ".pub")
	b, _ := os.ReadFile(sign + ".pub")
	os.WriteFile(trust, append(a, b...), 0o644)
	tx, err := (&securityFlags{signKey: sign}).config("239.1.1.1:6003")
	if err != nil {
		t.Fatal(err)
	}
	rx, err := (&securityFlags{trust: trust}).config("239.1.1.1:6003")
	if err != nil {
		t.Fatal(err)
	}
	sk, ok := tx.SigningKey.(*ecdsa.PrivateKey)
	if !ok || len(rx.Trusted) != 2 || !sk.PublicKey.Equal(rx.Trusted[1]) {
		t.Fatalf("signing key %T, trusted %v", tx.SigningKey, rx.Trusted)
	}
	s, err := secure.NewSealer(*tx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o, err := secure.NewOpener(*rx)
	if err != nil {
		t.Fatal(err)
	}
	m := framing.Message{Type: framing.TypeCmd, Cmd: framing.Cmd{Header: framing.Header{Type: framing.TypeCmd, SourceID: 1},
		SenderFields: framing.SenderFields{InstanceID: 1}, Flavor: framing.FlavorEOT}}
	pkt, _ := m.Append(nil)
	sealed, err := s.Seal(nil, pkt, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := o.Open(sealed, time.Now()); err != nil || !bytes.Equal(got, pkt) {
		t.Fatalf("open: %v", err)
	}
	bad := filepath.Join(dir, "bad.pub")
	os.WriteFile(bad, []byte("shoal-public-key-p256 04abcd\n"), 0o644)
	if _, err := (&securityFlags{trust: bad}).config("239.1.1.1:6003"); err == nil {
		t.Fatal("a malformed P-256 public key was accepted")
	}
}
