package secure

import (
	"errors"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters of KeyFromPassphrase: three passes over 64 MiB with
// 4 lanes (RFC 9106's second recommended option). That took 3.4 s on the
// busy 2-core machine it was written on: tolerable once per process,
// costly per guess.
// Variables, not constants, so that tests (under -race, where Argon2 is
// slow) can make them small.
var (
	argonTime    uint32 = 3
	argonMemory  uint32 = 64 << 10 // KiB
	argonThreads uint8  = 4
)

// KeyFromPassphrase derives a group key from a passphrase with Argon2id,
// salted with context (use the session's group address, e.g.
// "239.255.1.1:6003", so that one passphrase gives different keys for
// different groups). Every node must derive with the same passphrase,
// context and id. A passphrase is only as strong as it is long: prefer a
// random key file where one can be distributed.
func KeyFromPassphrase(passphrase []byte, context string, id uint8) (GroupKey, error) {
	if len(passphrase) < 8 {
		return GroupKey{}, errors.New("secure: passphrase shorter than 8 bytes")
	}
	salt := append([]byte("shoal group key v1\x00"), context...)
	k := GroupKey{ID: id}
	copy(k.Secret[:], argon2.IDKey(passphrase, salt, argonTime, argonMemory, argonThreads, KeySize))
	return k, nil
}
