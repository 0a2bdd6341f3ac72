package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shoalnet/shoal/secure"
)

// Key files are text, one key a line, so that a receiver's file can hold
// the old and the new key while a group rotates:
//
//	shoal-group-key <id 0-255> <64 hex digits>    (the first line is the one sealed with)
//	shoal-sign-key <64 hex digits: Ed25519 seed>
//	shoal-public-key <64 hex digits>              (a --trust file lists one or more)
//	shoal-sign-key-p256 <64 hex digits: ECDSA P-256 private scalar>
//	shoal-public-key-p256 <130 hex digits: uncompressed point>
//
// Secrets are read from files only, never from the command line, where
// other users could see them in the process list.

// securityFlags are the flags that turn on authentication and encryption.
type securityFlags struct {
	key, passFile  string
	signKey, trust string
	encrypt        bool
	maxSkew        time.Duration
}

func (f *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.key, "key", "", "group key file (filecast keygen): authenticate every packet; every node of the group needs it")
	fs.StringVar(&f.passFile, "passphrase-file", "", "instead of --key: derive the group key from the passphrase in this file (Argon2id, salted with --group; every node needs the same passphrase and --group)")
	fs.BoolVar(&f.encrypt, "encrypt", false, "with --key: also encrypt file data and names (AES-256-GCM)")
	fs.StringVar(&f.signKey, "sign-key", "", "signing key file (filecast keygen --sign): sign every packet sent")
	fs.StringVar(&f.trust, "trust", "", "file of public keys (shoal-public-key lines): accept files only from senders signing with one of them")
	fs.DurationVar(&f.maxSkew, "max-skew", 0, "with --key: refuse packets sent longer ago (or ahead) than this; clocks must agree within it (default 30s)")
}

// config returns the session's security configuration for group, nil if
// no flag asks for any.
func (f *securityFlags) config(group string) (*secure.Config, error) {
	if f.key != "" && f.passFile != "" {
		return nil, errors.New("--key and --passphrase-file exclude each other")
	}
	if f.key == "" && f.passFile == "" && f.signKey == "" && f.trust == "" {
		if f.encrypt {
			return nil, errors.New("--encrypt needs --key")
		}
		return nil, nil
	}
	c := &secure.Config{Encrypt: f.encrypt, MaxSkew: f.maxSkew}
	if f.key != "" {
		lines, err := readKeyFile(f.key, "shoal-group-key")
		if err != nil {
			return nil, err
		}
		var keys []secure.GroupKey
		for _, l := range lines {
			id, err := strconv.ParseUint(l[0], 10, 8)
			if err != nil || len(l) != 2 {
				return nil, fmt.Errorf("%s: a group key line is: shoal-group-key ID HEX", f.key)
			}
			k := secure.GroupKey{ID: uint8(id)}
			if b, err := hex.DecodeString(l[1]); err != nil || len(b) != secure.KeySize {
				return nil, fmt.Errorf("%s: key %d is not %d hex-encoded bytes", f.key, id, secure.KeySize)
			} else {
				copy(k.Secret[:], b)
			}
			keys = append(keys, k)
		}
		c.Keys = secure.NewKeyring(keys...)
	}
	if f.passFile != "" {
		b, err := os.ReadFile(f.passFile)
		if err != nil {
			return nil, err
		}
		k, err := keyFromPassphrase(bytes.TrimRight(b, "\r\n"), group, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f.passFile, err)
		}
		c.Keys = secure.NewKeyring(k)
	}
	if f.signKey != "" {
		if b, err := readHexKey(f.signKey, "shoal-sign-key-p256", 32); err == nil {
			if c.SigningKey, err = ecdsa.ParseRawPrivateKey(elliptic.P256(), b[0]); err != nil {
				return nil, fmt.Errorf("%s: %v", f.signKey, err)
			}
		} else if b, err2 := readHexKey(f.signKey, "shoal-sign-key", ed25519.SeedSize); err2 == nil {
			c.SigningKey = ed25519.NewKeyFromSeed(b[0])
		} else {
			return nil, fmt.Errorf("%v; %v", err2, err)
		}
	}
	if f.trust != "" {
		ed, err := readHexKey(f.trust, "shoal-public-key", ed25519.PublicKeySize)
		for _, k := range ed {
			c.Trusted = append(c.Trusted, ed25519.PublicKey(k))
		}
		p, err2 := readHexKey(f.trust, "shoal-public-key-p256", 65)
		for _, k := range p {
			pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", f.trust, err)
			}
			c.Trusted = append(c.Trusted, pk)
		}
		// A file of one kind has no line of the other: an error only if
		// it is malformed, or holds neither.
		for _, e := range []error{err, err2} {
			if e != nil && !errors.Is(e, errNoLine) {
				return nil, e
			}
		}
		if len(c.Trusted) == 0 {
			return nil, fmt.Errorf("%s: no shoal-public-key or shoal-public-key-p256 line", f.trust)
		}
	}
	return c, nil
}

// errNoLine: a key file has no line of the tag asked for.
var errNoLine = errors.New("no such line")

// keyFromPassphrase is secure.KeyFromPassphrase; tests replace it with
// something cheaper than Argon2id under -race.
var keyFromPassphrase = secure.KeyFromPassphrase

// readKeyFile returns the fields after the tag of every line of file that
// starts with tag, and complains if there is none.
func readKeyFile(file, tag string) ([][]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[0] == tag {
			out = append(out, fields[1:])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w: %s", file, errNoLine, tag)
	}
	return out, nil
}

func readHexKey(file, tag string, size int) ([][]byte, error) {
	lines, err := readKeyFile(file, tag)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, l := range lines {
		if len(l) != 1 {
			return nil, fmt.Errorf("%s: a line is: %s HEX", file, tag)
		}
		b, err := hex.DecodeString(l[0])
		if err != nil || len(b) != size {
			return nil, fmt.Errorf("%s: %s is not %d hex-encoded bytes", file, tag, size)
		}
		out = append(out, b)
	}
	return out, nil
}

// runKeygen writes a new group key, or a signing key pair, to a file
// created with mode 0600 (never overwriting one).
func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("filecast keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to create (required); with --sign the public key goes to FILE.pub")
	id := fs.Uint("id", 1, "key id of a group key (0-255): give the next key of a rotation a new id")
	sign := fs.Bool("sign", false, "write a signing key pair instead of a group key")
	alg := fs.String("sign-alg", "ed25519", "with --sign: the signature algorithm, ed25519 or p256 (ECDSA P-256, where policy asks for NIST curves)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || *id > 255 || (*alg != "ed25519" && *alg != "p256") {
		fmt.Fprintln(stderr, "filecast keygen: --out FILE is required, --id must be 0-255 and --sign-alg ed25519 or p256")
		return 2
	}
	var content, pub string
	if *sign && *alg == "p256" {
		sk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err == nil {
			var raw, pb []byte
			if raw, err = sk.Bytes(); err == nil {
				if pb, err = sk.PublicKey.Bytes(); err == nil {
					content = "shoal-sign-key-p256 " + hex.EncodeToString(raw) + "\n"
					pub = "shoal-public-key-p256 " + hex.EncodeToString(pb) + "\n"
				}
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "filecast keygen: %v\n", err)
			return 1
		}
	} else if *sign {
		pk, sk, err := ed25519.GenerateKey(nil)
		if err != nil {
			fmt.Fprintf(stderr, "filecast keygen: %v\n", err)
			return 1
		}
		content = "shoal-sign-key " + hex.EncodeToString(sk.Seed()) + "\n"
		pub = "shoal-public-key " + hex.EncodeToString(pk) + "\n"
	} else {
		k, err := secure.NewGroupKey(uint8(*id))
		if err != nil {
			fmt.Fprintf(stderr, "filecast keygen: %v\n", err)
			return 1
		}
		content = fmt.Sprintf("shoal-group-key %d %s\n", k.ID, hex.EncodeToString(k.Secret[:]))
	}
	if err := writeNew(*out, content, 0o600); err != nil {
		fmt.Fprintf(stderr, "filecast keygen: %v\n", err)
		return 1
	}
	if pub != "" {
		if err := writeNew(*out+".pub", pub, 0o644); err != nil {
			fmt.Fprintf(stderr, "filecast keygen: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s (keep it secret) and %s (give it to receivers for --trust)\n", *out, *out+".pub")
		return 0
	}
	fmt.Fprintf(stdout, "wrote %s: copy it to every node of the group (keep it secret)\n", *out)
	return 0
}

func writeNew(name, content string, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// refusedOnly reports whether st shows packets refused for want of the
// right key and none accepted, and says what to do about it.
func refusedOnly(st secure.Stats, keyed bool) (string, bool) {
	if st.Opened > 0 {
		return "", false
	}
	if keyed && st.BadTag+st.UnknownKey > 0 {
		return "packets from the group fail authentication: wrong or missing key (--key)", true
	}
	if !keyed && st.Malformed > 0 {
		return "the group's packets are authenticated and no --key was given", true
	}
	return "", false
}

// refusalReport is how often watchAuth reports the refusals counted.
const refusalReport = 10 * time.Second

// watchAuth reports packets the receiver refuses. It never ends the
// receiver: anyone can send packets that fail authentication, and a flood
// of them must not stop a transfer that the real sender then makes. After
// a second of refused packets with nothing accepted it says what is
// probably wrong (once), and every refusalReport while refusals continue
// it logs how many there were; the exit status comes from refusedOnly
// when the receiver ends by its own rules (--count, --idle-timeout).
func watchAuth(ctx context.Context, stats func() secure.Stats, keyed bool, stderr io.Writer, tick, every time.Duration) {
	var since, lastReport time.Time
	var reported uint64
	warned := false
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := stats()
		now := time.Now()
		if msg, bad := refusedOnly(st, keyed); !bad {
			since = time.Time{}
		} else if since.IsZero() {
			since = now
		} else if !warned && now.Sub(since) >= time.Second {
			fmt.Fprintf(stderr, "filecast recv: %s; still listening\n", msg)
			warned = true
		}
		if lastReport.IsZero() {
			lastReport = now
		}
		if r := st.Rejected(); now.Sub(lastReport) >= every {
			if r > reported {
				fmt.Fprintf(stderr, "filecast recv: refused %d packets in %v (%d accepted in all): %s\n",
					r-reported, now.Sub(lastReport).Round(time.Second), st.Opened, refusalCauses(st))
			}
			reported, lastReport = r, now
		}
	}
}

// refusalCauses lists the non-zero refusal counters of st.
func refusalCauses(st secure.Stats) string {
	var b strings.Builder
	for _, c := range []struct {
		name string
		n    uint64
	}{{"malformed", st.Malformed}, {"unknown key", st.UnknownKey}, {"bad tag", st.BadTag}, {"bad signature", st.BadSignature},
		{"replayed", st.Replayed}, {"stale", st.Stale}, {"old instance", st.OldInstance}} {
		if c.n > 0 {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", c.name, c.n)
		}
	}
	return b.String()
}

// fitSegment shrinks the default segment size by what a signature adds
// beyond the 32 bytes a full default packet can take, so that packets
// still fit a 1500-byte MTU; a --segment given explicitly is kept.
func fitSegment(fs *flag.FlagSet, segment int, c *secure.Config) int {
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "segment" })
	if explicit || c == nil || c.Overhead() <= 32 {
		return segment
	}
	return segment - (c.Overhead() - 32)
}
