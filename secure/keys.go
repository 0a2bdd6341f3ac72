package secure

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
)

// KeySize is the size of a group key's secret.
const KeySize = 32

// GroupKey is a symmetric key shared by every member of a session. ID
// travels in each packet, so receivers can hold several keys while a group
// moves from one to the next.
type GroupKey struct {
	ID     uint8
	Secret [KeySize]byte
}

// NewGroupKey returns a random key with the given id.
func NewGroupKey(id uint8) (GroupKey, error) {
	k := GroupKey{ID: id}
	if _, err := rand.Read(k.Secret[:]); err != nil {
		return k, err
	}
	return k, nil
}

// KeyProvider supplies group keys. Implement it to manage keys yourself
// (fetch them from a key server, rotate them on a schedule); Keyring is a
// ready one. Both methods are called for every packet, from the session's
// goroutine, and must be fast and safe for concurrent use.
type KeyProvider interface {
	// Current returns the key to seal outgoing packets with; ok false
	// means none, and sealing fails.
	Current() (k GroupKey, ok bool)
	// Key returns the key with the given id, to open a received packet.
	Key(id uint8) (k GroupKey, ok bool)
}

// Keyring is a KeyProvider holding a set of keys, one of them current. To
// rotate keys without a restart: Add the new key on every node, then Use
// it on the senders, then Remove the old one once no packet sealed with it
// can still be in flight.
type Keyring struct {
	mu      sync.RWMutex
	keys    map[uint8]GroupKey
	current uint8
	has     bool
}

// NewKeyring returns a keyring holding keys, the first of them current.
func NewKeyring(keys ...GroupKey) *Keyring {
	r := &Keyring{keys: map[uint8]GroupKey{}}
	for i, k := range keys {
		r.keys[k.ID] = k
		if i == 0 {
			r.current, r.has = k.ID, true
		}
	}
	return r
}

// Add adds or replaces a key; it does not change the current one.
func (r *Keyring) Add(k GroupKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = map[uint8]GroupKey{}
	}
	r.keys[k.ID] = k
}

// Use makes the key with id current.
func (r *Keyring) Use(id uint8) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keys[id]; !ok {
		return fmt.Errorf("secure: no key with id %d", id)
	}
	r.current, r.has = id, true
	return nil
}

// Remove forgets the key with id; if it was current, there is none.
func (r *Keyring) Remove(id uint8) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.keys, id)
	if r.current == id {
		r.has = false
	}
}

// Current implements KeyProvider.
func (r *Keyring) Current() (GroupKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.has {
		return GroupKey{}, false
	}
	return r.keys[r.current], true
}

// Key implements KeyProvider.
func (r *Keyring) Key(id uint8) (GroupKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.keys[id]
	return k, ok
}

// derived holds the per-key primitives, made once per key rather than per
// packet.
type derived struct {
	key  GroupKey
	mac  hash.Hash
	aead cipher.AEAD
}

func derive(k GroupKey) (*derived, error) {
	mk, err := hkdf.Key(sha256.New, k.Secret[:], nil, "shoal EXT_AUTH v1 hmac-sha256", 32)
	if err != nil {
		return nil, err
	}
	ek, err := hkdf.Key(sha256.New, k.Secret[:], nil, "shoal EXT_AUTH v1 aes-256-gcm", 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(ek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	return &derived{key: k, mac: hmac.New(sha256.New, mk), aead: aead}, nil
}

// keyCache maps key ids to derived primitives, re-deriving when a provider
// hands out a different secret under an id.
type keyCache struct {
	m map[uint8]*derived
}

func (c *keyCache) get(k GroupKey) (*derived, error) {
	if d := c.m[k.ID]; d != nil && d.key.Secret == k.Secret {
		return d, nil
	}
	d, err := derive(k)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[uint8]*derived{}
	}
	c.m[k.ID] = d
	return d, nil
}
