package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoalnet/shoal/secure"
)

// labSec is bench lab's --auth / --encrypt setting: the sender's security
// configuration, and the key file its receiver helpers read (keys go
// through files, never argv).
var labSec struct {
	cfg       *secure.Config
	keyFile   string
	trustFile string // the sender's public key, with --sign
}

// helperKey and helperTrust are the --key and --trust flags of a receiver
// helper.
var helperKey, helperTrust string

// setupLabSecurity makes a fresh group key for the run and returns a
// function that removes its file.
func setupLabSecurity(auth, encrypt, sign bool, alg string) (func(), error) {
	if !auth && !encrypt && !sign {
		return func() {}, nil
	}
	if alg != "ed25519" && alg != "p256" {
		return nil, fmt.Errorf("--sign-alg %q: want ed25519 or p256", alg)
	}
	k, err := secure.NewGroupKey(1)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "shoal-bench-key")
	if err != nil {
		return nil, err
	}
	labSec.keyFile = filepath.Join(dir, "group.key")
	if err := os.WriteFile(labSec.keyFile, []byte(hex.EncodeToString(k.Secret[:])), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	labSec.cfg = &secure.Config{Keys: secure.NewKeyring(k), Encrypt: encrypt}
	if sign {
		// The trust file: the public key in hex, "p256:" first for ECDSA.
		var pub string
		if alg == "p256" {
			sk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err == nil {
				var b []byte
				if b, err = sk.PublicKey.Bytes(); err == nil {
					labSec.cfg.SigningKey, pub = sk, "p256:"+hex.EncodeToString(b)
				}
			}
			if err != nil {
				os.RemoveAll(dir)
				return nil, err
			}
		} else {
			pk, sk, err := ed25519.GenerateKey(nil)
			if err != nil {
				os.RemoveAll(dir)
				return nil, err
			}
			labSec.cfg.SigningKey, pub = sk, hex.EncodeToString(pk)
		}
		labSec.trustFile = filepath.Join(dir, "trust.pub")
		if err := os.WriteFile(labSec.trustFile, []byte(pub), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	return func() { os.RemoveAll(dir) }, nil
}

// helperArgs are the arguments that give a receiver helper the key.
func helperArgs() []string {
	if labSec.keyFile == "" {
		return nil
	}
	if labSec.trustFile != "" {
		return []string{"--key", labSec.keyFile, "--trust", labSec.trustFile}
	}
	return []string{"--key", labSec.keyFile}
}

// helperSecurity reads a receiver helper's key file (nil without --key).
func helperSecurity() (*secure.Config, error) {
	if helperKey == "" {
		return nil, nil
	}
	b, err := os.ReadFile(helperKey)
	if err != nil {
		return nil, err
	}
	k := secure.GroupKey{ID: 1}
	if n, err := hex.Decode(k.Secret[:], b); err != nil || n != secure.KeySize {
		return nil, fmt.Errorf("bad key file %s", helperKey)
	}
	c := &secure.Config{Keys: secure.NewKeyring(k)}
	if helperTrust != "" {
		b, err := os.ReadFile(helperTrust)
		if err != nil {
			return nil, err
		}
		if raw, ok := strings.CutPrefix(string(b), "p256:"); ok {
			pb, err := hex.DecodeString(raw)
			if err != nil {
				return nil, fmt.Errorf("bad public key file %s", helperTrust)
			}
			pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pb)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", helperTrust, err)
			}
			c.Trusted = []crypto.PublicKey{pk}
			return c, nil
		}
		pk := make([]byte, ed25519.PublicKeySize)
		if n, err := hex.Decode(pk, b); err != nil || n != len(pk) {
			return nil, fmt.Errorf("bad public key file %s", helperTrust)
		}
		c.Trusted = []crypto.PublicKey{ed25519.PublicKey(pk)}
	}
	return c, nil
}
