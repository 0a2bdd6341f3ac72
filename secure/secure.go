package secure

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// Authentication scheme ids (ASID) Shoal writes in EXT_AUTH: Scheme for
// packets with a group tag only or an Ed25519 signature, SchemeP256 for
// packets signed with ECDSA P-256. Both have the same layout.
const (
	Scheme     = 1
	SchemeP256 = 2
)

// EXT_AUTH flags (low 4 bits of its third byte).
const (
	FlagMAC = 0x1 // HMAC-SHA-256/128 group tag
	FlagGCM = 0x2 // AES-256-GCM group tag, payload encrypted
	FlagSig = 0x4 // Ed25519 signature
	// FlagBatch (with FlagSig): the signature is over the root of a hash
	// tree of a batch of packets, and the packet carries its path.
	FlagBatch = 0x8
)

const (
	fixedLen = 16 // het, hel, asid|flags, key id, counter, send time
	sigLen   = ed25519.SignatureSize
	tagLen   = 16
	nodeLen  = 16 // hash tree nodes: SHA-256 truncated
	// MaxBatch is the most packets SealAll signs with one signature.
	MaxBatch = 1 << maxDepth
	maxDepth = 4
	// Window is the number of counters below the highest one seen from a
	// node that the replay guard remembers.
	Window = 1024
	// maxRoots bounds the cache of verified batch signatures.
	maxRoots = 4096
	// maxPeers bounds the replay state. Only authenticated packets create
	// an entry, so only key holders can fill it.
	maxPeers = 4096
	// DefaultMaxSkew is the default bound on the age (and the lead) of a
	// packet's send time.
	DefaultMaxSkew = 30 * time.Second
)

// Config says how to seal and what to accept. The zero Config does
// nothing useful; set Keys, or SigningKey and Trusted, or both.
type Config struct {
	// Keys supplies the group keys. Nil means no group tag: packets are
	// then only signed (and receivers' feedback is not authenticated).
	Keys KeyProvider
	// Encrypt seals with AES-256-GCM, encrypting payloads, instead of
	// HMAC-SHA-256. Receivers accept either whatever their own setting.
	Encrypt bool
	// SigningKey, if set, signs every packet this node sends: an
	// ed25519.PrivateKey, or an *ecdsa.PrivateKey on P-256 where policy
	// asks for NIST curves (its signatures take the same room; signing and
	// verifying cost a few times more, once per batch of SealAll).
	SigningKey crypto.Signer
	// Trusted, if not empty, makes an Opener accept sender messages
	// (NORM_INFO, NORM_DATA, NORM_CMD) only when signed by one of these
	// keys: ed25519.PublicKey or *ecdsa.PublicKey (P-256) values, of
	// either kind or both. Feedback (NACK, ACK) needs only the group tag.
	Trusted []crypto.PublicKey
	// MaxSkew bounds how far a packet's send time may be from the
	// receiver's clock. 0 means DefaultMaxSkew.
	MaxSkew time.Duration
}

// Errors of Seal and Open. Open's wrap exactly one of the last seven.
var (
	ErrConfig    = errors.New("secure: invalid configuration")
	ErrSeal      = errors.New("secure: cannot seal packet")
	ErrMalformed = errors.New("secure: missing or malformed EXT_AUTH")
	ErrKey       = errors.New("secure: unknown key id")
	ErrTag       = errors.New("secure: bad group tag")
	ErrSignature = errors.New("secure: missing, bad or untrusted signature")
	ErrReplay    = errors.New("secure: replayed or too old counter")
	ErrStale     = errors.New("secure: send time outside the allowed skew")
	ErrInstance  = errors.New("secure: packet from an earlier sender instance")
)

func (c *Config) check() error {
	if c.Keys == nil && c.SigningKey == nil && len(c.Trusted) == 0 {
		return fmt.Errorf("%w: no group keys, signing key or trusted keys", ErrConfig)
	}
	if c.Encrypt && c.Keys == nil {
		return fmt.Errorf("%w: Encrypt needs group keys", ErrConfig)
	}
	switch k := c.SigningKey.(type) {
	case nil:
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return fmt.Errorf("%w: signing key has %d bytes", ErrConfig, len(k))
		}
	case *ecdsa.PrivateKey:
		if k == nil || k.Curve != elliptic.P256() {
			return fmt.Errorf("%w: ECDSA signing keys must be on P-256", ErrConfig)
		}
	default:
		return fmt.Errorf("%w: signing key of type %T (want ed25519.PrivateKey or *ecdsa.PrivateKey)", ErrConfig, k)
	}
	for _, k := range c.Trusted {
		switch k := k.(type) {
		case ed25519.PublicKey:
			if len(k) != ed25519.PublicKeySize {
				return fmt.Errorf("%w: trusted key has %d bytes", ErrConfig, len(k))
			}
		case *ecdsa.PublicKey:
			if k == nil || k.Curve != elliptic.P256() {
				return fmt.Errorf("%w: trusted ECDSA keys must be on P-256", ErrConfig)
			}
		default:
			return fmt.Errorf("%w: trusted key of type %T (want ed25519.PublicKey or *ecdsa.PublicKey)", ErrConfig, k)
		}
	}
	if c.MaxSkew < 0 {
		return fmt.Errorf("%w: negative MaxSkew", ErrConfig)
	}
	return nil
}

// Overhead returns the most bytes Seal or SealAll add to a packet under c.
func (c *Config) Overhead() int {
	n := fixedLen
	if c.SigningKey != nil {
		n += batchSigLen(maxDepth)
	}
	if c.Keys != nil {
		n += tagLen
	}
	return n
}

// encrypted reports whether a message's content is encrypted under GCM:
// the payloads that carry application data.
func encrypted(b []byte) bool {
	switch framing.Type(b[0] & 0x0f) {
	case framing.TypeData, framing.TypeInfo:
		return true
	case framing.TypeCmd:
		return b[12] == byte(framing.FlavorApplication)
	}
	return false
}

func senderMessage(b []byte) bool {
	t := framing.Type(b[0] & 0x0f)
	return t == framing.TypeData || t == framing.TypeInfo || t == framing.TypeCmd
}

// Sealer adds EXT_AUTH to outgoing packets. It is not safe for concurrent
// use; one node has one Sealer (its counter must not repeat).
type Sealer struct {
	cfg     Config
	scheme  byte // ASID: SchemeP256 with an ECDSA key
	counter uint64
	keys    keyCache
	scratch [64]byte
	nonce   [12]byte // a field, not a local: passed to an interface, it would escape
	// SealAll's hash tree (heap order: root at 1, leaves from 1<<depth),
	// each packet's signature offset, and the signed message.
	tree  [2 * MaxBatch][nodeLen]byte
	sigAt [MaxBatch]int
	msg   [64]byte
}

// NewSealer returns a sealer whose counter starts at now, in Unix
// nanoseconds (see the package documentation for why).
func NewSealer(cfg Config, now time.Time) (*Sealer, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s := &Sealer{cfg: cfg, scheme: Scheme, counter: uint64(now.UnixNano())}
	if _, ok := cfg.SigningKey.(*ecdsa.PrivateKey); ok {
		s.scheme = SchemeP256
	}
	return s, nil
}

// sign writes the signature of msg, sigLen bytes, to dst: Ed25519, or
// ECDSA P-256 over SHA-256(msg) as r and s of 32 bytes each.
func (s *Sealer) sign(dst, msg []byte) error {
	switch k := s.cfg.SigningKey.(type) {
	case ed25519.PrivateKey:
		copy(dst, ed25519.Sign(k, msg))
	case *ecdsa.PrivateKey:
		sum := sha256.Sum256(msg)
		r, ss, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return err
		}
		r.FillBytes(dst[:32])
		ss.FillBytes(dst[32:sigLen])
	}
	return nil
}

// batchSigLen is the size of the signature area of a batch-signed packet:
// signature, index, depth, two reserved bytes, path.
func batchSigLen(depth int) int { return sigLen + 4 + depth*nodeLen }

// Seal appends pkt, a NORM packet as an engine built it, to dst with
// EXT_AUTH added (and its payload encrypted under Config.Encrypt), and
// returns the extended dst. With a SigningKey the packet gets a signature
// of its own; SealAll amortizes one over a batch. pkt and dst must not
// overlap. On error dst is returned unchanged.
func (s *Sealer) Seal(dst, pkt []byte, now time.Time) ([]byte, error) {
	out, sigAt, err := s.seal(dst, pkt, now, -1)
	if err != nil || sigAt < 0 {
		return out, err
	}
	if err := s.sign(out[sigAt:sigAt+sigLen], out[len(dst):]); err != nil {
		return dst, fmt.Errorf("%w: %v", ErrSeal, err)
	}
	return out, nil
}

// SealAll seals every packet of src into dst (keeping destinations), and
// returns how many it could not seal (they are left out). With a
// SigningKey it signs runs of up to MaxBatch packets with one signature
// over the root of a hash tree of them, each packet carrying its path to
// the root, so a receiver checks one signature per run and each packet on
// its own, whatever else of the run it lost.
func (s *Sealer) SealAll(dst, src *framing.Outbox, now time.Time) (failed int) {
	if s.cfg.SigningKey == nil {
		for i := range src.Len() {
			b, to := src.Packet(i)
			out, err := s.Seal(dst.Buf(), b, now)
			if err != nil {
				failed++
				continue
			}
			dst.Commit(out, to)
		}
		return failed
	}
	for i := 0; i < src.Len(); i += MaxBatch {
		n := min(MaxBatch, src.Len()-i)
		depth := 0
		for 1<<depth < n {
			depth++
		}
		first := dst.Len()
		for j := range n {
			b, to := src.Packet(i + j)
			out, sigAt, err := s.seal(dst.Buf(), b, now, depth)
			if err != nil {
				failed++
				continue
			}
			pkt := out[len(dst.Buf()):]
			s.sigAt[dst.Len()-first] = sigAt - len(dst.Buf())
			leaf(s.tree[1<<depth+dst.Len()-first][:], pkt)
			dst.Commit(out, to)
		}
		m := dst.Len() - first
		if m == 0 {
			continue
		}
		clear(s.tree[1<<depth+m : 2<<depth])
		for k := 1<<depth - 1; k >= 1; k-- {
			node(s.tree[k][:], s.tree[2*k][:], s.tree[2*k+1][:])
		}
		var sig [sigLen]byte
		if err := s.sign(sig[:], rootMessage(s.msg[:0], s.tree[1][:])); err != nil {
			// Already in dst, these packets leave with a zero signature
			// that every receiver refuses; signing with an in-memory key
			// does not fail in practice.
			failed += m
		}
		for j := range m {
			pkt, _ := dst.Packet(first + j)
			a := pkt[s.sigAt[j]:]
			copy(a, sig[:])
			a[sigLen], a[sigLen+1] = byte(j), byte(depth)
			// The path: the sibling at each level, leaf upwards.
			p := a[sigLen+4:]
			for k := 1<<depth + j; k > 1; k /= 2 {
				copy(p, s.tree[k^1][:])
				p = p[nodeLen:]
			}
		}
	}
	return failed
}

// leaf and node hash the tree: SHA-256, truncated, with a prefix byte
// that keeps leaves and inner nodes apart.
func leaf(dst, pkt []byte) {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(pkt)
	var sum [32]byte
	copy(dst, h.Sum(sum[:0]))
}

func node(dst, l, r []byte) {
	var in [1 + 2*nodeLen]byte
	in[0] = 1
	copy(in[1:], l)
	copy(in[1+nodeLen:], r)
	sum := sha256.Sum256(in[:])
	copy(dst, sum[:nodeLen])
}

// rootMessage is what a batch signature signs.
func rootMessage(dst, root []byte) []byte {
	return append(append(dst, "shoal EXT_AUTH batch v1\x00"...), root...)
}

// seal does Seal's work but the signature: it leaves the signature area
// zero and returns its offset in out (-1 without a SigningKey). depth < 0
// means a signature of the packet's own, else a batch signature whose path
// has depth nodes.
func (s *Sealer) seal(dst, pkt []byte, now time.Time, depth int) ([]byte, int, error) {
	start, hdrLen, err := framing.ExtensionArea(pkt)
	if err != nil {
		return dst, -1, fmt.Errorf("%w: %v", ErrSeal, err)
	}
	if err := framing.Extensions(pkt[start:hdrLen]).Check(); err != nil {
		return dst, -1, fmt.Errorf("%w: %v", ErrSeal, err)
	}
	extLen := fixedLen
	if s.cfg.Keys != nil {
		extLen += tagLen
	}
	if s.cfg.SigningKey != nil {
		extLen += sigLen
		if depth >= 0 {
			extLen += batchSigLen(depth) - sigLen
		}
	}
	if (hdrLen+extLen)/4 > 255 {
		return dst, -1, fmt.Errorf("%w: header too long for EXT_AUTH", ErrSeal)
	}
	var d *derived
	flags := byte(0)
	keyID := byte(0)
	if s.cfg.Keys != nil {
		k, ok := s.cfg.Keys.Current()
		if !ok {
			return dst, -1, fmt.Errorf("%w: no current group key", ErrSeal)
		}
		if d, err = s.keys.get(k); err != nil {
			return dst, -1, fmt.Errorf("%w: %v", ErrSeal, err)
		}
		keyID = k.ID
		flags = FlagMAC
		if s.cfg.Encrypt {
			flags = FlagGCM
		}
	}
	if s.cfg.SigningKey != nil {
		flags |= FlagSig
		if depth >= 0 {
			flags |= FlagBatch
		}
	}
	s.counter++
	p0 := len(dst)
	out := append(dst, pkt[:hdrLen]...)
	out[p0+1] = byte((hdrLen + extLen) / 4)
	x := len(out)
	out = append(out, framing.ExtAuth, byte(extLen/4), s.scheme<<4|flags, keyID)
	out = binary.BigEndian.AppendUint64(out, s.counter)
	out = binary.BigEndian.AppendUint32(out, uint32(now.Unix()))
	out = append(out, make([]byte, extLen-fixedLen)...) // signature and tag, zero for now
	body := len(out)
	payload := pkt[hdrLen:]
	tagAt := len(out) - tagLen
	nonce := s.nonce[:]
	switch {
	case flags&FlagGCM != 0:
		binary.BigEndian.PutUint32(nonce, binary.BigEndian.Uint32(pkt[4:]))
		binary.BigEndian.PutUint64(nonce[4:], s.counter)
		if encrypted(pkt) {
			out = slices.Grow(out, len(payload)+tagLen)
			ct := d.aead.Seal(out[body:body], nonce, payload, out[p0:body])
			copy(out[tagAt:], ct[len(payload):])
			out = out[:body+len(payload)]
		} else {
			out = append(out, payload...)
			tag := d.aead.Seal(s.scratch[:0], nonce, nil, out[p0:])
			copy(out[tagAt:], tag)
		}
	case flags&FlagMAC != 0:
		out = append(out, payload...)
		d.mac.Reset()
		d.mac.Write(out[p0:])
		copy(out[tagAt:], d.mac.Sum(s.scratch[:0])[:tagLen])
	default:
		out = append(out, payload...)
	}
	if flags&FlagSig != 0 {
		return out, x + fixedLen, nil
	}
	return out, -1, nil
}

// Stats counts what an Opener accepted and why it rejected the rest.
type Stats struct {
	Opened       uint64 // packets that passed every check
	Malformed    uint64 // no EXT_AUTH, or one Shoal cannot read
	UnknownKey   uint64 // sealed under a key id the provider does not have
	BadTag       uint64 // group tag wrong: altered, forged, or the wrong key
	BadSignature uint64 // signature missing, wrong, or by an untrusted key
	Replayed     uint64 // counter seen before or older than the window
	Stale        uint64 // send time further than MaxSkew from now
	OldInstance  uint64 // a sender instance older than the one seen
}

// Rejected returns the number of packets rejected for any reason.
func (s Stats) Rejected() uint64 {
	return s.Malformed + s.UnknownKey + s.BadTag + s.BadSignature + s.Replayed + s.Stale + s.OldInstance
}

// peer is the replay state of one source node id.
type peer struct {
	top      uint64              // highest counter accepted
	seen     [Window / 64]uint64 // bit i: counter top-i accepted
	instance uint16
	hasInst  bool
	trusted  int // index in Trusted of the key that last verified
	last     time.Time
}

// Opener checks EXT_AUTH on received packets. It is not safe for
// concurrent use.
type Opener struct {
	cfg     Config
	skew    time.Duration
	keys    keyCache
	peers   map[uint32]*peer
	stats   Stats
	scratch []byte
	tag     [tagLen]byte
	sig     [sigLen + 4 + maxDepth*nodeLen]byte // the signature area as received
	sum     [32]byte
	nonce   [12]byte
	msg     [64]byte
	// roots maps the roots of batch signatures already verified to the
	// trusted key that signed them, so a batch costs one verification.
	roots map[[nodeLen]byte]int
}

// NewOpener returns an opener for cfg.
func NewOpener(cfg Config) (*Opener, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	o := &Opener{cfg: cfg, skew: cfg.MaxSkew, peers: map[uint32]*peer{}, roots: map[[nodeLen]byte]int{}}
	if o.skew == 0 {
		o.skew = DefaultMaxSkew
	}
	return o, nil
}

// Stats returns the opener's counters.
func (o *Opener) Stats() Stats { return o.stats }

// Open checks the packet b, received at now, and returns the packet as
// its sender's engine built it: EXT_AUTH removed and the payload
// decrypted. It works in place, so the result aliases b and b's bytes are
// changed even when the packet is rejected. A rejected packet leaves the
// Opener's replay state as it was and is counted in Stats; the error wraps
// one of ErrMalformed, ErrKey, ErrTag, ErrSignature, ErrReplay, ErrStale
// and ErrInstance.
func (o *Opener) Open(b []byte, now time.Time) ([]byte, error) {
	out, err := o.open(b, now)
	if err != nil {
		switch {
		case errors.Is(err, ErrMalformed):
			o.stats.Malformed++
		case errors.Is(err, ErrKey):
			o.stats.UnknownKey++
		case errors.Is(err, ErrTag):
			o.stats.BadTag++
		case errors.Is(err, ErrSignature):
			o.stats.BadSignature++
		case errors.Is(err, ErrReplay):
			o.stats.Replayed++
		case errors.Is(err, ErrStale):
			o.stats.Stale++
		case errors.Is(err, ErrInstance):
			o.stats.OldInstance++
		}
		return nil, err
	}
	o.stats.Opened++
	return out, nil
}

func malformed(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }

func (o *Opener) open(b []byte, now time.Time) ([]byte, error) {
	start, hdrLen, err := framing.ExtensionArea(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// EXT_AUTH must be the last extension and the only one of its type.
	x := -1
	area := framing.Extensions(b[start:hdrLen])
	off := 0
	for e, next, ok := area.Next(0); ok; e, next, ok = area.Next(next) {
		if e.Type == framing.ExtAuth {
			if x >= 0 {
				return nil, malformed("two EXT_AUTH")
			}
			x = start + off
		}
		off = next
	}
	if off != len(area) {
		return nil, malformed("bad header extension")
	}
	if x < 0 {
		return nil, malformed("no EXT_AUTH")
	}
	extLen := int(b[x+1]) * 4
	if x+extLen != hdrLen {
		return nil, malformed("EXT_AUTH is not the last extension")
	}
	scheme := b[x+2] >> 4
	flags := b[x+2] & 0x0f
	if scheme != Scheme && (scheme != SchemeP256 || flags&FlagSig == 0) {
		return nil, malformed("unknown authentication scheme")
	}
	if flags&(FlagMAC|FlagGCM) == FlagMAC|FlagGCM || flags&(FlagBatch|FlagSig) == FlagBatch {
		return nil, malformed("unknown flags")
	}
	want, sigArea := fixedLen, 0
	if flags&FlagSig != 0 {
		sigArea = sigLen
		if flags&FlagBatch != 0 {
			if extLen < fixedLen+sigLen+4 {
				return nil, malformed("EXT_AUTH too short for a batch signature")
			}
			a := b[x+fixedLen+sigLen:]
			if depth := int(a[1]); depth > maxDepth || int(a[0]) >= 1<<depth || a[2] != 0 || a[3] != 0 {
				return nil, malformed("bad batch signature index or depth")
			} else {
				sigArea = batchSigLen(depth)
			}
		}
		want += sigArea
	}
	if flags&(FlagMAC|FlagGCM) != 0 {
		want += tagLen
	}
	if extLen != want {
		return nil, malformed("EXT_AUTH length does not match its flags")
	}
	src := binary.BigEndian.Uint32(b[4:])
	counter := binary.BigEndian.Uint64(b[x+4:])
	sent := time.Unix(int64(binary.BigEndian.Uint32(b[x+12:])), 0)

	// Policy first: it needs no cryptography.
	needSig := len(o.cfg.Trusted) > 0 && senderMessage(b)
	if o.cfg.Keys != nil && flags&(FlagMAC|FlagGCM) == 0 {
		return nil, fmt.Errorf("%w: no group tag", ErrTag)
	}
	if needSig && flags&FlagSig == 0 {
		return nil, fmt.Errorf("%w: unsigned sender message", ErrSignature)
	}
	if o.cfg.Keys == nil && flags&(FlagMAC|FlagGCM) != 0 {
		// A tag this opener cannot check (or a payload it cannot
		// decrypt): accepting it would be accepting anything.
		return nil, fmt.Errorf("%w: tagged packet and no group key", ErrKey)
	}
	if d := now.Sub(sent); d > o.skew || d < -o.skew {
		return nil, fmt.Errorf("%w: sent %v, now %v", ErrStale, sent.UTC(), now.UTC())
	}
	p := o.peers[src]

	sigAt := x + fixedLen
	tagAt := hdrLen - tagLen
	if flags&FlagSig != 0 {
		copy(o.sig[:], b[sigAt:sigAt+sigArea])
		clear(b[sigAt : sigAt+sigArea])
	}
	payload := b[hdrLen:]
	var plain []byte // decrypted payload, copied over payload once all checks pass
	if flags&(FlagMAC|FlagGCM) != 0 {
		k, ok := o.cfg.Keys.Key(b[x+3])
		if !ok {
			return nil, fmt.Errorf("%w: %d", ErrKey, b[x+3])
		}
		d, err := o.keys.get(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		}
		copy(o.tag[:], b[tagAt:hdrLen])
		clear(b[tagAt:hdrLen])
		if flags&FlagMAC != 0 {
			d.mac.Reset()
			d.mac.Write(b)
			if !hmac.Equal(d.mac.Sum(o.sum[:0])[:tagLen], o.tag[:]) {
				return nil, ErrTag
			}
		} else {
			nonce := o.nonce[:]
			binary.BigEndian.PutUint32(nonce, src)
			binary.BigEndian.PutUint64(nonce[4:], counter)
			aad, ct := b, []byte(nil)
			if encrypted(b) {
				aad, ct = b[:hdrLen], payload
			}
			o.scratch = append(append(o.scratch[:0], ct...), o.tag[:]...)
			pt, err := d.aead.Open(o.scratch[:0], nonce, o.scratch, aad)
			if err != nil {
				return nil, ErrTag
			}
			if ct != nil {
				plain = pt
			}
		}
		copy(b[tagAt:], o.tag[:])
	}
	// Replays after the group tag, so that a forgery is counted as one
	// whatever counter it claims; before any public-key work.
	if p != nil {
		if senderMessage(b) && p.hasInst && binary.BigEndian.Uint16(b[8:]) != p.instance && counter < p.top {
			return nil, fmt.Errorf("%w: instance %d, current %d", ErrInstance, binary.BigEndian.Uint16(b[8:]), p.instance)
		}
		if err := p.check(counter); err != nil {
			return nil, err
		}
	}
	if flags&FlagSig != 0 && len(o.cfg.Trusted) > 0 {
		hint := 0
		if p != nil {
			hint = p.trusted
		}
		who := -1
		if flags&FlagBatch != 0 {
			var root [nodeLen]byte
			o.root(root[:], b, o.sig[:sigArea])
			if j, ok := o.roots[root]; ok {
				who = j // this batch's signature was checked already
			} else {
				who = o.verify(rootMessage(o.msg[:0], root[:]), hint, scheme)
				if who >= 0 {
					if len(o.roots) >= maxRoots {
						clear(o.roots)
					}
					o.roots[root] = who
				}
			}
		} else {
			who = o.verify(b, hint, scheme)
		}
		if who < 0 {
			return nil, ErrSignature
		}
		if p != nil {
			p.trusted = who
		}
	}

	// Accepted: update the replay state, decrypt, strip EXT_AUTH.
	if p == nil {
		p = o.newPeer(src)
		p.top = counter
		p.seen[0] = 1
	} else {
		p.accept(counter)
	}
	p.last = now
	if senderMessage(b) {
		p.instance, p.hasInst = binary.BigEndian.Uint16(b[8:]), true
	}
	if plain != nil {
		copy(payload, plain)
	}
	copy(b[extLen:x+extLen], b[:x])
	b = b[extLen:]
	b[1] = byte((hdrLen - extLen) / 4)
	return b, nil
}

// verify returns the index in Trusted of the key that signed msg, or -1;
// it tries the key at hint first, and only keys of the packet's scheme.
func (o *Opener) verify(msg []byte, hint int, scheme byte) int {
	var sum [32]byte
	var r, s *big.Int
	for i := range o.cfg.Trusted {
		j := (hint + i) % len(o.cfg.Trusted)
		switch k := o.cfg.Trusted[j].(type) {
		case ed25519.PublicKey:
			if scheme == Scheme && ed25519.Verify(k, msg, o.sig[:sigLen]) {
				return j
			}
		case *ecdsa.PublicKey:
			if scheme != SchemeP256 {
				continue
			}
			if r == nil {
				sum = sha256.Sum256(msg)
				r, s = new(big.Int).SetBytes(o.sig[:32]), new(big.Int).SetBytes(o.sig[32:sigLen])
			}
			if ecdsa.Verify(k, sum[:], r, s) {
				return j
			}
		}
	}
	return -1
}

// root computes into dst the root of the hash tree a batch-signed packet
// b (its signature area zeroed) claims to belong to, from the index and
// path in area (the signature area as received).
func (o *Opener) root(dst, b, area []byte) {
	leaf(dst, b)
	idx := int(area[sigLen])
	path := area[sigLen+4:]
	for ; len(path) >= nodeLen; path = path[nodeLen:] {
		if idx&1 == 0 {
			node(dst, dst, path[:nodeLen])
		} else {
			node(dst, path[:nodeLen], dst)
		}
		idx >>= 1
	}
}

func (o *Opener) newPeer(src uint32) *peer {
	if len(o.peers) >= maxPeers {
		var old uint32
		var oldest *peer
		for id, q := range o.peers {
			if oldest == nil || q.last.Before(oldest.last) {
				old, oldest = id, q
			}
		}
		delete(o.peers, old)
	}
	p := &peer{}
	o.peers[src] = p
	return p
}

// check reports whether counter c may be accepted, without changing p.
func (p *peer) check(c uint64) error {
	if c > p.top {
		return nil
	}
	d := p.top - c
	if d >= Window {
		return fmt.Errorf("%w: counter %d is %d below the highest", ErrReplay, c, d)
	}
	if p.seen[d/64]&(1<<(d%64)) != 0 {
		return fmt.Errorf("%w: counter %d seen before", ErrReplay, c)
	}
	return nil
}

// accept records counter c, which check allowed.
func (p *peer) accept(c uint64) {
	if c <= p.top {
		d := p.top - c
		p.seen[d/64] |= 1 << (d % 64)
		return
	}
	shift := c - p.top
	p.top = c
	if shift >= Window {
		p.seen = [Window / 64]uint64{}
	} else {
		// Shift the bitmap up by shift bits: bit i moves to bit i+shift.
		words, bits := int(shift/64), uint(shift%64)
		for i := len(p.seen) - 1; i >= 0; i-- {
			var v uint64
			if j := i - words; j >= 0 {
				v = p.seen[j] << bits
				if bits > 0 && j > 0 {
					v |= p.seen[j-1] >> (64 - bits)
				}
			}
			p.seen[i] = v
		}
	}
	p.seen[0] |= 1
}
