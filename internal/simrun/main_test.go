package simrun

import (
	"fmt"
	"os"
	"testing"

	"github.com/shoalnet/shoal/internal/lab"
)

// TestMain runs the simulations on their own turn on the machine, as labs
// take theirs: they load every core for a minute or more, and a lab test
// of another package running beside them (go test runs packages in
// parallel) would measure their load rather than the protocol.
func TestMain(m *testing.M) {
	release, err := lab.Exclusive()
	if err != nil {
		fmt.Fprintf(os.Stderr, "simrun: running beside labs: %v\n", err)
	}
	code := m.Run()
	if release != nil {
		release()
	}
	os.Exit(code)
}
