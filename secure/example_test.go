package secure_test

import (
	"fmt"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/secure"
)

// A sender seals what its engine built; a receiver opens it back into the
// same bytes, and refuses a replayed copy.
func Example() {
	key, _ := secure.NewGroupKey(1)
	cfg := secure.Config{Keys: secure.NewKeyring(key), Encrypt: true}
	sealer, _ := secure.NewSealer(cfg, time.Now())
	opener, _ := secure.NewOpener(cfg)

	eot := framing.Cmd{Header: framing.Header{Type: framing.TypeCmd, SourceID: 7}, Flavor: framing.FlavorEOT}
	pkt, _ := eot.Append(nil)
	wire, _ := sealer.Seal(nil, pkt, time.Now())
	replay := append([]byte(nil), wire...)

	got, err := opener.Open(wire, time.Now())
	fmt.Println(len(wire)-len(pkt), string(got) == string(pkt), err)
	_, err = opener.Open(replay, time.Now())
	fmt.Println(err != nil, opener.Stats().Replayed)
	// Output:
	// 32 true <nil>
	// true 1
}
