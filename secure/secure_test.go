package secure_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/secure"
)

var (
	t0     = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	fields = framing.SenderFields{InstanceID: 0x687f, GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: 3}
)

const srcID = 0x0a4d0001

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// samples builds one packet of every message type Shoal sends, from node
// src of instance inst.
func samples(t testing.TB, src uint32, inst uint16) map[string][]byte {
	sf := fields
	sf.InstanceID = inst
	hdr := func(ty framing.Type) framing.Header {
		return framing.Header{Type: ty, Sequence: 7, SourceID: src}
	}
	fti := must[framing.Extensions](t)(framing.AppendFTI(nil, 5, framing.FTI{TransferLength: 4000, SymbolLength: 1400, MaxBlockLen: 64}))
	ref := framing.SymbolRef{FECID: 5, ObjectID: 3, PayloadID: framing.PayloadID{Block: 1, Symbol: 2}}
	msgs := map[string]framing.Message{
		"DATA": {Type: framing.TypeData, Data: framing.Data{Header: hdr(framing.TypeData), SenderFields: sf,
			FECID: 5, ObjectID: 3, PayloadID: ref.PayloadID, Ext: fti, Payload: bytes.Repeat([]byte("secret data "), 20)}},
		"INFO": {Type: framing.TypeInfo, Info: framing.Info{Header: hdr(framing.TypeInfo), SenderFields: sf,
			Flags: framing.FlagInfo | framing.FlagFile, FECID: 5, ObjectID: 3, Ext: fti, Content: []byte("dir/file.bin")}},
		"CMD(FLUSH)": {Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd), SenderFields: sf,
			Flavor: framing.FlavorFlush, Ref: ref, Content: framing.AppendNodeID(nil, 2)}},
		"CMD(EOT)": {Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd), SenderFields: sf, Flavor: framing.FlavorEOT}},
		"CMD(SQUELCH)": {Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd), SenderFields: sf,
			Flavor: framing.FlavorSquelch, Ref: ref, Content: framing.AppendObjectID(nil, 3)}},
		"CMD(CC)": {Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd), SenderFields: sf,
			Flavor: framing.FlavorCC, CCSequence: 3, SendTime: framing.Timestamp{Sec: 5, Usec: 6},
			Ext:     framing.AppendRate(nil, 100),
			Content: framing.AppendCCNode(nil, framing.CCNode{NodeID: 2, Flags: framing.CCFlagCLR, RTT: 9, Rate: 99})}},
		"CMD(ACK_REQ)": {Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd), SenderFields: sf,
			Flavor: framing.FlavorAckReq, AckType: framing.AckFlush, AckID: 1, Content: framing.AppendNodeID(nil, 2)}},
		"CMD(APPLICATION)": {Type: framing.TypeCmd, Cmd: framing.Cmd{Header: hdr(framing.TypeCmd), SenderFields: sf,
			Flavor: framing.FlavorApplication, Content: []byte("app command")}},
		"NACK": {Type: framing.TypeNack, Nack: framing.Nack{Header: hdr(framing.TypeNack), ServerID: 1, InstanceID: inst,
			Ext: framing.AppendCC(nil, framing.CCFeedback{Sequence: 3, RTT: 4}),
			Content: must[[]byte](t)(framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairSegment, 0,
				[]framing.SymbolRef{ref}))}},
		"ACK(FLUSH)": {Type: framing.TypeAck, Ack: framing.Ack{Header: hdr(framing.TypeAck), ServerID: 1, InstanceID: inst,
			AckType: framing.AckFlush, Payload: must[[]byte](t)(framing.AppendSymbolRef(nil, ref, 0))}},
		"ACK(CC)": {Type: framing.TypeAck, Ack: framing.Ack{Header: hdr(framing.TypeAck), ServerID: 1, InstanceID: inst,
			AckType: framing.AckCC, Ext: framing.AppendCC(nil, framing.CCFeedback{Sequence: 3, RTT: 4})}},
	}
	out := map[string][]byte{}
	for name, m := range msgs {
		out[name] = must[[]byte](t)(m.Append(nil))
	}
	return out
}

func names(m map[string][]byte) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

type mode struct {
	name string
	cfg  func(keys secure.KeyProvider, sk ed25519.PrivateKey, pk ed25519.PublicKey) (tx, rx secure.Config)
}

var modes = []mode{
	{"mac", func(k secure.KeyProvider, _ ed25519.PrivateKey, _ ed25519.PublicKey) (secure.Config, secure.Config) {
		return secure.Config{Keys: k}, secure.Config{Keys: k}
	}},
	{"gcm", func(k secure.KeyProvider, _ ed25519.PrivateKey, _ ed25519.PublicKey) (secure.Config, secure.Config) {
		return secure.Config{Keys: k, Encrypt: true}, secure.Config{Keys: k}
	}},
	{"mac+sig", func(k secure.KeyProvider, sk ed25519.PrivateKey, pk ed25519.PublicKey) (secure.Config, secure.Config) {
		return secure.Config{Keys: k, SigningKey: sk}, secure.Config{Keys: k, Trusted: []crypto.PublicKey{pk}}
	}},
	{"gcm+sig", func(k secure.KeyProvider, sk ed25519.PrivateKey, pk ed25519.PublicKey) (secure.Config, secure.Config) {
		return secure.Config{Keys: k, Encrypt: true, SigningKey: sk}, secure.Config{Keys: k, Trusted: []crypto.PublicKey{pk}}
	}},
	{"sig", func(_ secure.KeyProvider, sk ed25519.PrivateKey, pk ed25519.PublicKey) (secure.Config, secure.Config) {
		return secure.Config{SigningKey: sk}, secure.Config{Trusted: []crypto.PublicKey{pk}}
	}},
	// ECDSA P-256 instead of Ed25519; receivers trust an Ed25519 key too.
	{"gcm+p256", func(k secure.KeyProvider, _ ed25519.PrivateKey, pk ed25519.PublicKey) (secure.Config, secure.Config) {
		return secure.Config{Keys: k, Encrypt: true, SigningKey: p256SK}, secure.Config{Keys: k, Trusted: []crypto.PublicKey{pk, &p256SK.PublicKey}}
	}},
	{"p256", func(_ secure.KeyProvider, _ ed25519.PrivateKey, _ ed25519.PublicKey) (secure.Config, secure.Config) {
		return secure.Config{SigningKey: p256SK}, secure.Config{Trusted: []crypto.PublicKey{&p256SK.PublicKey}}
	}},
}

// p256SK is a fixed ECDSA P-256 key.
var p256SK = func() *ecdsa.PrivateKey {
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		panic(err)
	}
	return k
}()

func testKey(id uint8, fill byte) secure.GroupKey {
	k := secure.GroupKey{ID: id}
	for i := range k.Secret {
		k.Secret[i] = fill + byte(i)
	}
	return k
}

var seedSK = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

func setup(t testing.TB, m mode) (*secure.Sealer, *secure.Opener) {
	keys := secure.NewKeyring(testKey(1, 1))
	txc, rxc := m.cfg(keys, seedSK, seedSK.Public().(ed25519.PublicKey))
	s := must[*secure.Sealer](t)(secure.NewSealer(txc, t0))
	o := must[*secure.Opener](t)(secure.NewOpener(rxc))
	return s, o
}

// TestRoundTrip: every message type, sealed in every mode, opens to the
// exact bytes the engine built; the sealed packet is still a well-formed
// NORM message, and under GCM its payload is not readable.
func TestRoundTrip(t *testing.T) {
	for _, m := range modes {
		s, o := setup(t, m)
		pk := samples(t, srcID, 9)
		for _, name := range names(pk) {
			orig := pk[name]
			sealed := must[[]byte](t)(s.Seal(make([]byte, 5, 64), orig, t0))[5:]
			if got, want := len(sealed)-len(orig), m.overhead(); got != want {
				t.Errorf("%s %s: overhead %d, want %d", m.name, name, got, want)
			}
			var msg framing.Message
			if err := msg.Unmarshal(sealed); err != nil {
				t.Errorf("%s %s: sealed packet is not NORM: %v", m.name, name, err)
			}
			if m.name == "gcm" && (name == "DATA" || name == "INFO" || name == "CMD(APPLICATION)") {
				_, hl, _ := framing.ExtensionArea(orig)
				if bytes.Contains(sealed, orig[hl:]) {
					t.Errorf("%s: payload readable under GCM", name)
				}
			}
			got, err := o.Open(sealed, t0.Add(time.Second))
			if err != nil || !bytes.Equal(got, orig) {
				t.Fatalf("%s %s: open: %v\n got % x\nwant % x", m.name, name, err, got, orig)
			}
		}
		if st := o.Stats(); st.Opened != uint64(len(pk)) || st.Rejected() != 0 {
			t.Errorf("%s: stats %+v", m.name, st)
		}
	}
}

// overhead is what Seal adds in mode m: 16 bytes, a 16-byte tag with a
// group key, a 64-byte signature with a signing key.
func (m mode) overhead() int {
	return map[string]int{"mac": 32, "gcm": 32, "mac+sig": 96, "gcm+sig": 96, "sig": 80, "gcm+p256": 96, "p256": 80}[m.name]
}

// TestTamper flips every bit of a sealed packet of every type, truncates it
// to every length and splices headers and bodies of different packets: all
// are rejected and counted, and the genuine packet still opens afterwards
// (no rejected packet moved the replay window).
func TestTamper(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, o := setup(t, m)
			pk := samples(t, srcID, 9)
			sealed := map[string][]byte{}
			for _, name := range names(pk) {
				sealed[name] = must[[]byte](t)(s.Seal(nil, pk[name], t0))
			}
			now := t0.Add(time.Second)
			tries := uint64(0)
			reject := func(what string, b []byte) {
				t.Helper()
				tries++
				if got, err := o.Open(b, now); err == nil {
					t.Fatalf("%s accepted: % x", what, got)
				}
			}
			for _, name := range names(sealed) {
				orig := sealed[name]
				for bit := range len(orig) * 8 {
					if strings.Contains(m.name, "sig") && bit%8 != (bit/8)%8 {
						// Each flip here costs an Ed25519 verification:
						// one bit per byte (a different one in each) keeps
						// the test fast.
						continue
					}
					b := bytes.Clone(orig)
					b[bit/8] ^= 1 << (bit % 8)
					reject(fmt.Sprintf("%s bit %d", name, bit), b)
				}
				for n := range len(orig) {
					reject(fmt.Sprintf("%s truncated to %d", name, n), bytes.Clone(orig[:n]))
				}
				reject(name+" with a byte appended", append(bytes.Clone(orig), 0))
				for _, other := range names(sealed) {
					if other == name {
						continue
					}
					_, hl, _ := framing.ExtensionArea(orig)
					_, ohl, _ := framing.ExtensionArea(sealed[other])
					splice := append(bytes.Clone(orig[:hl]), sealed[other][ohl:]...)
					if !bytes.Equal(splice, orig) {
						reject(name+" header on "+other+" body", splice)
					}
				}
			}
			if st := o.Stats(); st.Rejected() != tries || st.Opened != 0 {
				t.Fatalf("stats %+v, want %d rejected and none opened", st, tries)
			}
			for _, name := range names(sealed) {
				got, err := o.Open(bytes.Clone(sealed[name]), now)
				if err != nil || !bytes.Equal(got, pk[name]) {
					t.Fatalf("%s: genuine packet after the attacks: %v", name, err)
				}
			}
		})
	}
}

// TestReplay: a packet opens once; a copy, a packet older than the window,
// and a capture replayed after the skew (to an opener that never saw it)
// are rejected; reordering within the window is fine.
func TestReplay(t *testing.T) {
	s, o := setup(t, modes[0])
	pkt := samples(t, srcID, 9)["DATA"]
	var sealed [][]byte
	for range secure.Window + 10 {
		sealed = append(sealed, must[[]byte](t)(s.Seal(nil, pkt, t0)))
	}
	now := t0.Add(time.Second)
	open := func(i int) error { _, err := o.Open(bytes.Clone(sealed[i]), now); return err }
	if err := open(5); err != nil {
		t.Fatal(err)
	}
	if err := open(5); !errors.Is(err, secure.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	if err := open(3); err != nil { // reordered, within the window
		t.Fatal(err)
	}
	if err := open(len(sealed) - 1); err != nil {
		t.Fatal(err)
	}
	if err := open(4); !errors.Is(err, secure.ErrReplay) { // now below the window
		t.Fatalf("below window: %v", err)
	}
	if err := open(len(sealed) - 2); err != nil {
		t.Fatal(err)
	}
	if err := open(len(sealed) - 2); !errors.Is(err, secure.ErrReplay) {
		t.Fatalf("replay in window: %v", err)
	}
	// A fresh receiver, the capture replayed past the skew, or from the future.
	_, fresh := setup(t, modes[0])
	for _, at := range []time.Time{t0.Add(31 * time.Second), t0.Add(-31 * time.Second)} {
		if _, err := fresh.Open(bytes.Clone(sealed[7]), at); !errors.Is(err, secure.ErrStale) {
			t.Fatalf("replay at %v: %v", at, err)
		}
	}
	if st := o.Stats(); st.Replayed != 3 || st.Opened != 4 {
		t.Fatalf("stats %+v", st)
	}
	if fresh.Stats().Stale != 2 {
		t.Fatalf("fresh stats %+v", fresh.Stats())
	}
	// MaxSkew is configurable.
	o2 := must[*secure.Opener](t)(secure.NewOpener(secure.Config{Keys: secure.NewKeyring(testKey(1, 1)), MaxSkew: time.Hour}))
	if _, err := o2.Open(bytes.Clone(sealed[7]), t0.Add(31*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// TestEarlierInstance: after a sender restarts (new instance, its counter
// continuing above the old one), packets of the old instance are refused,
// even ones never seen before.
func TestEarlierInstance(t *testing.T) {
	keys := secure.NewKeyring(testKey(1, 1))
	cfg := secure.Config{Keys: keys}
	old := must[*secure.Sealer](t)(secure.NewSealer(cfg, t0))
	o := must[*secure.Opener](t)(secure.NewOpener(cfg))
	p1 := samples(t, srcID, 1)["DATA"]
	early := must[[]byte](t)(old.Seal(nil, p1, t0))
	late := must[[]byte](t)(old.Seal(nil, p1, t0))
	if _, err := o.Open(late, t0); err != nil {
		t.Fatal(err)
	}
	restarted := must[*secure.Sealer](t)(secure.NewSealer(cfg, t0.Add(time.Second)))
	if _, err := o.Open(must[[]byte](t)(restarted.Seal(nil, samples(t, srcID, 2)["DATA"], t0.Add(time.Second))), t0.Add(time.Second)); err != nil {
		t.Fatalf("new instance refused: %v", err)
	}
	if _, err := o.Open(early, t0.Add(time.Second)); !errors.Is(err, secure.ErrInstance) {
		t.Fatalf("earlier instance: %v", err)
	}
	if o.Stats().OldInstance != 1 {
		t.Fatalf("stats %+v", o.Stats())
	}
}

// TestKeys: the wrong key, an unknown key id, a keyless opener and an
// untrusted or missing signature are rejected and counted by cause; keys
// rotate by id without a restart.
func TestKeys(t *testing.T) {
	pkt := samples(t, srcID, 9)["DATA"]
	nack := samples(t, srcID, 9)["NACK"]
	right := secure.NewKeyring(testKey(1, 1))
	wrong := secure.NewKeyring(testKey(1, 2))
	s := must[*secure.Sealer](t)(secure.NewSealer(secure.Config{Keys: right}, t0))
	seal := func() []byte { return must[[]byte](t)(s.Seal(nil, pkt, t0)) }

	ow := must[*secure.Opener](t)(secure.NewOpener(secure.Config{Keys: wrong}))
	if _, err := ow.Open(seal(), t0); !errors.Is(err, secure.ErrTag) {
		t.Fatalf("wrong key: %v", err)
	}
	ou := must[*secure.Opener](t)(secure.NewOpener(secure.Config{Keys: secure.NewKeyring(testKey(2, 1))}))
	if _, err := ou.Open(seal(), t0); !errors.Is(err, secure.ErrKey) {
		t.Fatalf("unknown id: %v", err)
	}
	sigOnly := must[*secure.Opener](t)(secure.NewOpener(secure.Config{Trusted: []crypto.PublicKey{seedSK.Public().(ed25519.PublicKey)}}))
	if _, err := sigOnly.Open(seal(), t0); err == nil {
		t.Fatal("signature-only opener accepted an unsigned, tagged packet")
	}
	if _, err := ow.Open(bytes.Clone(pkt), t0); !errors.Is(err, secure.ErrMalformed) {
		t.Fatalf("plain packet: %v", err)
	}
	if st := ow.Stats(); st.BadTag != 1 || st.Malformed != 1 || ou.Stats().UnknownKey != 1 {
		t.Fatalf("stats %+v %+v", st, ou.Stats())
	}

	// Signatures: untrusted signer, and an unsigned sender message, are
	// refused; unsigned feedback with a good tag is not.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	trustCfg := secure.Config{Keys: right, Trusted: []crypto.PublicKey{seedSK.Public().(ed25519.PublicKey)}}
	ot := must[*secure.Opener](t)(secure.NewOpener(trustCfg))
	impostor := must[*secure.Sealer](t)(secure.NewSealer(secure.Config{Keys: right, SigningKey: other}, t0))
	if _, err := ot.Open(must[[]byte](t)(impostor.Seal(nil, pkt, t0)), t0); !errors.Is(err, secure.ErrSignature) {
		t.Fatalf("untrusted signer: %v", err)
	}
	if _, err := ot.Open(seal(), t0); !errors.Is(err, secure.ErrSignature) {
		t.Fatalf("unsigned data: %v", err)
	}
	if _, err := ot.Open(must[[]byte](t)(s.Seal(nil, nack, t0)), t0); err != nil {
		t.Fatalf("tagged feedback: %v", err)
	}
	if ot.Stats().BadSignature != 2 {
		t.Fatalf("stats %+v", ot.Stats())
	}

	// Rotation: receivers learn key 2, the sender switches, receivers drop
	// key 1; what is still sealed under key 1 is then refused.
	rxRing := secure.NewKeyring(testKey(1, 1))
	txRing := secure.NewKeyring(testKey(1, 1))
	tx := must[*secure.Sealer](t)(secure.NewSealer(secure.Config{Keys: txRing}, t0))
	rx := must[*secure.Opener](t)(secure.NewOpener(secure.Config{Keys: rxRing}))
	inFlight := must[[]byte](t)(tx.Seal(nil, pkt, t0))
	rxRing.Add(testKey(2, 50))
	txRing.Add(testKey(2, 50))
	if err := txRing.Use(2); err != nil {
		t.Fatal(err)
	}
	if _, err := rx.Open(must[[]byte](t)(tx.Seal(nil, pkt, t0)), t0); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	rxRing.Remove(1)
	if _, err := rx.Open(inFlight, t0); !errors.Is(err, secure.ErrKey) {
		t.Fatalf("retired key: %v", err)
	}
	txRing.Remove(2)
	if _, err := tx.Seal(nil, pkt, t0); !errors.Is(err, secure.ErrSeal) {
		t.Fatalf("seal without a current key: %v", err)
	}
}

// TestConfig: configurations that cannot work are refused.
func TestConfig(t *testing.T) {
	for _, c := range []secure.Config{
		{},
		{Encrypt: true, SigningKey: seedSK},
		{SigningKey: seedSK[:10]},
		{Trusted: []crypto.PublicKey{ed25519.PublicKey{1, 2}}},
		{Trusted: []crypto.PublicKey{&p384.PublicKey}}, // only P-256
		{SigningKey: p384},
		{Trusted: []crypto.PublicKey{"not a key"}},
		{Keys: secure.NewKeyring(), MaxSkew: -1},
	} {
		if _, err := secure.NewOpener(c); !errors.Is(err, secure.ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestSealAllocs: sealing and opening with a group key allocate nothing
// per packet once warm (signing does: ed25519.Sign returns a new slice).
func TestSealAllocs(t *testing.T) {
	for _, m := range modes[:2] {
		s, o := setup(t, m)
		pkt := samples(t, srcID, 9)["DATA"]
		buf := make([]byte, 0, 4096)
		now := t0
		allocs := testing.AllocsPerRun(100, func() {
			b, err := s.Seal(buf[:0], pkt, now)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.Open(b, now); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per packet", m.name, allocs)
		}
	}
}

// TestPassphrase: the same passphrase and context give the same key; a
// different context or passphrase another; short passphrases are refused.
func TestPassphrase(t *testing.T) {
	defer secure.CheapArgon()()
	a := must[secure.GroupKey](t)(secure.KeyFromPassphrase([]byte("correct horse battery"), "239.1.1.1:6003", 4))
	b := must[secure.GroupKey](t)(secure.KeyFromPassphrase([]byte("correct horse battery"), "239.1.1.1:6003", 4))
	c := must[secure.GroupKey](t)(secure.KeyFromPassphrase([]byte("correct horse battery"), "239.1.1.2:6003", 4))
	d := must[secure.GroupKey](t)(secure.KeyFromPassphrase([]byte("correct horse stapler"), "239.1.1.1:6003", 4))
	if a != b || a.ID != 4 || a.Secret == c.Secret || a.Secret == d.Secret || a.Secret == [32]byte{} {
		t.Fatalf("derivation: %x %x %x %x", a.Secret, b.Secret, c.Secret, d.Secret)
	}
	if _, err := secure.KeyFromPassphrase([]byte("short"), "", 1); err == nil {
		t.Fatal("short passphrase accepted")
	}
}
