// Package lab builds a private network for Shoal's tests: network
// namespaces ("hosts") joined by a Linux bridge in a namespace of its own,
// each with a veth, an IPv4 and an IPv6 address, and a multicast route, so
// that real multicast runs without ever touching the machine's own
// interfaces. Per host, nftables can drop a share of the UDP sent to it and tc
// tbf can limit the link rate. Everything is removed when the test ends.
//
// It needs root and the ip command (iproute2); nftables for loss, tc for
// rate limits. Without them New skips the test with a message saying what
// is missing.
package lab

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shoalnet/shoal/internal/simnet"
)

// Iface is the name of every host's interface.
const Iface = "lab0"

// Lab is a set of hosts on one bridge.
type Lab struct {
	prefix string
	bridge string // namespace of the bridge
	locked bool   // holds the machine's lab lock until Close
	Hosts  []*Host
}

// Host is one network namespace.
type Host struct {
	Name string
	NS   string
	IP4  netip.Addr
	IP6  netip.Addr
	lab  *Lab
	idx  int
}

var labCount atomic.Int32

// Available reports why the lab cannot run here, or "" if it can.
func Available() string {
	if runtime.GOOS != "linux" {
		return "network namespaces need Linux"
	}
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command (iproute2) is not installed"
	}
	return ""
}

// New builds a lab of n hosts, or skips t if the machine cannot. The lab is
// torn down when t ends.
func New(t testing.TB, n int) *Lab {
	t.Helper()
	if why := Available(); why != "" {
		t.Skipf("lab: %s; skipping real-multicast test", why)
	}
	l, err := Build(n)
	if l != nil {
		t.Cleanup(l.Close)
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Build builds a lab of n hosts. On error it returns what was built so far
// (nil if nothing) for the caller to Close.
func Build(n int) (*Lab, error) {
	if why := Available(); why != "" {
		return nil, fmt.Errorf("lab: %s", why)
	}
	// One lab on the machine at a time (see lockMachine); Close lets the
	// next one go.
	if err := lockMachine(); err != nil {
		return nil, fmt.Errorf("lab: taking the machine's lab lock: %w", err)
	}
	l := &Lab{prefix: fmt.Sprintf("shoal%d-%d", os.Getpid(), labCount.Add(1)), locked: true}
	l.bridge = l.prefix + "-br"
	var err error
	must := func(args ...string) {
		if err != nil {
			return
		}
		if out, e := run(args...); e != nil {
			err = fmt.Errorf("lab: ip %s: %v\n%s", strings.Join(args, " "), e, out)
		}
	}
	must("netns", "add", l.bridge)
	must("-n", l.bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	must("-n", l.bridge, "link", "set", "br0", "up")
	for i := range n {
		h := &Host{Name: fmt.Sprintf("h%d", i), NS: fmt.Sprintf("%s-h%d", l.prefix, i), lab: l, idx: i,
			IP4: netip.AddrFrom4([4]byte{10, 99, 0, byte(i + 1)}),
			IP6: netip.MustParseAddr(fmt.Sprintf("fd00:99::%d", i+1))}
		must("netns", "add", h.NS)
		l.Hosts = append(l.Hosts, h)
		must("-n", l.bridge, "link", "add", h.Name, "type", "veth", "peer", "name", Iface, "netns", h.NS)
		must("-n", l.bridge, "link", "set", h.Name, "master", "br0", "up")
		must("-n", h.NS, "link", "set", "lo", "up")
		must("-n", h.NS, "addr", "add", h.IP4.String()+"/24", "dev", Iface)
		must("-n", h.NS, "-6", "addr", "add", h.IP6.String()+"/64", "dev", Iface, "nodad")
		must("-n", h.NS, "link", "set", Iface, "up")
		must("-n", h.NS, "route", "add", "224.0.0.0/4", "dev", Iface)
		if err == nil {
			err = h.gro()
		}
	}
	return l, err
}

// gro turns on generic receive offload on the host's interface, as a real
// NIC has it: runs of datagrams of one flow may reach a socket that asks
// for them (UDP_GRO) in one buffer. A veth has it off by default. Without
// ethtool the lab works as before.
func (h *Host) gro() error {
	if _, err := exec.LookPath("ethtool"); err != nil {
		return nil
	}
	if out, err := h.Exec("ethtool", "-K", Iface, "gro", "on"); err != nil {
		return fmt.Errorf("lab: ethtool -K %s gro on: %v\n%s", Iface, err, out)
	}
	// A veth hands what it forwards to its peer's GRO only if it cannot
	// itself carry TCP segmentation offload batches; the bridge's end of
	// the link forwards, so it goes without.
	if out, err := run("netns", "exec", h.lab.bridge, "ethtool", "-K", h.Name, "tso", "off"); err != nil {
		return fmt.Errorf("lab: ethtool -K %s tso off: %v\n%s", h.Name, err, out)
	}
	return nil
}

// Close removes every namespace of the lab (and with them the veths and
// the bridge). It is safe to call more than once.
func (l *Lab) Close() {
	for _, h := range l.Hosts {
		_, _ = run("netns", "del", h.NS)
	}
	l.Hosts = nil
	_, _ = run("netns", "del", l.bridge)
	if l.locked {
		l.locked = false
		unlockMachine()
	}
}

func run(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Exec runs a command inside the host's namespace.
func (h *Host) Exec(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// SetLoss makes pct percent of the UDP packets on their way to the host
// from the network get lost, at random and per datagram, with nftables on
// the bridge (traffic over the host's loopback is spared).
func (h *Host) SetLoss(pct int) error { return h.SetBurstLoss(float64(pct), 0) }

// SetBurstLoss is SetLoss for pct percent (fractions allowed), at random
// if burst is 1 or less, otherwise in bursts of mean length burst
// packets, by the two-state Gilbert model (as simnet.Bursty). nftables
// holds the state in a set: "udp" is in it while the link is in its bad
// state, where every datagram is dropped and the state turns good with
// probability 1/burst after each; in the good state each datagram turns
// it bad with the probability that makes the long-run loss pct. Datagrams
// handled at once on several CPUs share the state, so bursts come out a
// little longer than the model's when the host is busy.
func (h *Host) SetBurstLoss(pct, burst float64) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("lab: nft (nftables) is not installed: %w", err)
	}
	table := "lab-" + h.Name
	_, _ = run("netns", "exec", h.lab.bridge, "nft", "delete", "table", "bridge", table)
	if pct <= 0 {
		return nil
	}
	if pct >= 100 {
		return fmt.Errorf("lab: loss of %v%% leaves nothing to measure", pct)
	}
	// A veth carries a UDP GSO batch as one buffer, so nftables would drop
	// or pass whole batches: a burst loss no real network shows. Once any
	// host loses packets, every host's link takes one segment per buffer,
	// so the kernel cuts batches before the link, as a NIC would, and loss
	// applies per datagram. (Without loss, batches may cross whole.)
	for _, o := range h.lab.Hosts {
		if out, err := run("-n", o.NS, "link", "set", Iface, "gso_max_segs", "1"); err != nil {
			return fmt.Errorf("lab: gso_max_segs: %v\n%s", err, out)
		}
	}
	// The drop happens on the bridge, as the frame leaves for the host:
	// on the host's own input hook it would come after the host's GRO has
	// merged runs of datagrams, and drop whole runs. numgen draws below a
	// threshold out of a million.
	const scale = 1_000_000
	var script string
	if burst <= 1 {
		script = fmt.Sprintf(`table bridge %s {
	chain loss {
		type filter hook forward priority 0; policy accept;
		oifname %q meta l4proto udp numgen random mod %d < %d drop
	}
}
`, table, h.Name, scale, int(pct/100*scale+0.5))
	} else {
		// No size on the set: elements deleted from the packet path keep
		// their place until the set's garbage collection, and a full set
		// would refuse the next burst.
		m := simnet.Bursty(pct/100, burst)
		script = fmt.Sprintf(`table bridge %s {
	set bad { type inet_proto; flags dynamic; }
	chain bad {
		numgen random mod %d < %d delete @bad { meta l4proto }
		drop
	}
	chain lossy {
		meta l4proto != udp accept
		meta l4proto @bad jump bad
		numgen random mod %d < %d add @bad { meta l4proto }
	}
	chain loss {
		type filter hook forward priority 0; policy accept;
		oifname %q jump lossy
	}
}
`, table, scale, int(m.PBadToGood*scale+0.5), scale, max(int(m.PGoodToBad*scale+0.5), 1), h.Name)
	}
	cmd := exec.Command("ip", "netns", "exec", h.lab.bridge, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: nft: %v\n%s", err, out)
	}
	return nil
}

// SetRate limits the host's outgoing link to rate (tc syntax, e.g.
// "100mbit") with a token bucket filter.
func (h *Host) SetRate(rate string) error {
	out, err := h.Exec("tc", "qdisc", "replace", "dev", Iface, "root", "tbf", "rate", rate, "burst", "64kb", "latency", "50ms")
	if err != nil {
		return fmt.Errorf("lab: tc: %v\n%s", err, out)
	}
	return nil
}

// Exclusive takes the turn labs take on the machine (see machineLock) for
// a test process that loads every core for long, such as the simulations
// of internal/simrun: a lab running beside one measures its load, not the
// protocol (TestLabCCBottleneck's sender stalled for round trips beside
// them and missed its bounds in 1 run of 10 or so). It blocks until no
// lab runs, and returns the function that gives the turn back.
func Exclusive() (release func(), err error) {
	if err := lockMachine(); err != nil {
		return nil, err
	}
	return unlockMachine, nil
}
