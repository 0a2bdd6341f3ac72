package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoalnet/shoal/secure"
)

// labSec is bench lab's --auth / --encrypt setting: the sender's security
// configuration, and the key file its receiver helpers read (keys go
// through files, never argv).
var labSec struct {
	cfg     *secure.Config
	keyFile string
}

// helperKey is the --key flag of a receiver helper.
var helperKey string

// setupLabSecurity makes a fresh group key for the run and returns a
// function that removes its file.
func setupLabSecurity(auth, encrypt bool) (func(), error) {
	if !auth && !encrypt {
		return func() {}, nil
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
	return func() { os.RemoveAll(dir) }, nil
}

// helperArgs are the arguments that give a receiver helper the key.
func helperArgs() []string {
	if labSec.keyFile == "" {
		return nil
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
	return &secure.Config{Keys: secure.NewKeyring(k)}, nil
}
