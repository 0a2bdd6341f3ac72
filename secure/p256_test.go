package secure_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/secure"
)

var p384 = func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

// TestP256: ECDSA P-256 signatures are told apart from Ed25519 ones by
// the scheme id (2), take the same room, and are accepted only when the
// signer's P-256 key is trusted: not under another P-256 key, nor under
// an Ed25519 key; a receiver may trust keys of both kinds at once.
func TestP256(t *testing.T) {
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkt := samples(t, srcID, 9)["DATA"]
	keys := secure.NewKeyring(testKey(1, 1))
	tx := must[*secure.Sealer](t)(secure.NewSealer(secure.Config{Keys: keys, SigningKey: p256SK}, t0))
	ed := must[*secure.Sealer](t)(secure.NewSealer(secure.Config{Keys: keys, SigningKey: seedSK}, t0))
	sealed := must[[]byte](t)(tx.Seal(nil, pkt, t0))
	if len(sealed) != len(must[[]byte](t)(ed.Seal(nil, pkt, t0))) {
		t.Fatal("P-256 and Ed25519 signatures take different room")
	}
	_, hdrLen, _ := framing.ExtensionArea(sealed)
	start := hdrLen - (len(sealed) - len(pkt)) // EXT_AUTH is the last extension
	if asid := sealed[start+2] >> 4; asid != secure.SchemeP256 {
		t.Fatalf("scheme id %d", asid)
	}
	for _, c := range []struct {
		name    string
		trusted []crypto.PublicKey
		ok      bool
	}{
		{"signer", []crypto.PublicKey{&p256SK.PublicKey}, true},
		{"both kinds", []crypto.PublicKey{seedSK.Public(), &other.PublicKey, &p256SK.PublicKey}, true},
		{"another P-256 key", []crypto.PublicKey{&other.PublicKey}, false},
		{"Ed25519 only", []crypto.PublicKey{seedSK.Public()}, false},
	} {
		o := must[*secure.Opener](t)(secure.NewOpener(secure.Config{Keys: keys, Trusted: c.trusted}))
		got, err := o.Open(bytes.Clone(sealed), t0)
		if c.ok != (err == nil) || (c.ok && !bytes.Equal(got, pkt)) || (!c.ok && !errors.Is(err, secure.ErrSignature)) {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	// A P-256 signature relabelled as Ed25519 (scheme 1) is refused by a
	// receiver trusting both: the scheme id is signed.
	o := must[*secure.Opener](t)(secure.NewOpener(secure.Config{Keys: keys, Trusted: []crypto.PublicKey{seedSK.Public(), &p256SK.PublicKey}}))
	relabel := bytes.Clone(sealed)
	relabel[start+2] = secure.Scheme<<4 | relabel[start+2]&0x0f
	if _, err := o.Open(relabel, t0); err == nil {
		t.Fatal("relabelled signature accepted")
	}
}
