package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

const testdata = "../../framing/testdata/"

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// The expected counts were taken from the raw bytes with a separate script
// (type nibble of byte 0, CMD flavor at byte 12, ACK type at byte 14), not
// with this codec.
func TestSummary(t *testing.T) {
	cases := map[string]string{
		"normcast-sample.pcap": "ACK 180\nACK(CC) 180\nCMD 195\nCMD(CC) 172\nCMD(FLUSH) 22\nCMD(SQUELCH) 1\n" +
			"DATA 156\nINFO 1\nNACK 8\nNOT-NORM 0\n",
		"normcast-sample-fec-ack.pcap": "ACK 2\nACK(FLUSH) 2\nCMD 7\nCMD(CC) 1\nCMD(FLUSH) 5\nCMD(SQUELCH) 1\n" +
			"DATA 160\nINFO 1\nNACK 6\nNOT-NORM 0\n",
	}
	for file, want := range cases {
		code, out, errOut := runCmd(t, "--summary", testdata+file)
		if code != 0 || out != want {
			t.Errorf("%s: exit %d, stderr %q\n got:\n%s\nwant:\n%s", file, code, errOut, out, want)
		}
	}
}

func TestTextOneLinePerMessage(t *testing.T) {
	code, out, _ := runCmd(t, testdata+"normcast-sample-fec-ack.pcap")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 176 {
		t.Fatalf("exit %d, %d lines, want 176", code, len(lines))
	}
	for _, want := range []string{
		`INFO seq=1 src=0a4d0001 inst=37109`, `info="sample200k.bin"`,
		`DATA seq=2 src=0a4d0001 inst=37109`, `fec=5 obj=0 block=0 sym=0 ext=[FTI size=204800 seg=1400 k=64 p=8] len=1400`,
		`CMD(FLUSH) seq=164`, `acking=[0a4d0002 0a4d0003]`,
		`ACK(FLUSH) seq=0 src=0a4d0002 server=0a4d0001`, `watermark=[fec=5 obj=0 block=2 sym=48]`,
		`NACK seq=`, `repair=[`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestJSON(t *testing.T) {
	code, out, _ := runCmd(t, "--json", testdata+"normcast-sample.pcap")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	n, data := 0, 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		n++
		for _, k := range []string{"type", "source_id", "sequence"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("line %d lacks %q: %s", n, k, sc.Text())
			}
		}
		switch m["type"] {
		case "REPORT":
		default:
			if _, ok := m["instance_id"]; !ok {
				t.Fatalf("line %d lacks instance_id: %s", n, sc.Text())
			}
		}
		switch m["type"] {
		case "CMD", "ACK":
			if m["flavor"] == nil {
				t.Fatalf("line %d: %s without flavor", n, m["type"])
			}
		case "DATA":
			data++
			for _, k := range []string{"object", "fec_id", "block", "symbol"} {
				if _, ok := m[k]; !ok {
					t.Fatalf("DATA line %d lacks %q", n, k)
				}
			}
			if m["source_id"] != float64(0x0a4d0001) || m["fec_id"] != float64(5) {
				t.Fatalf("DATA line %d: %s", n, sc.Text())
			}
		}
	}
	if n != 540 || data != 156 {
		t.Fatalf("%d messages (%d DATA), want 540 (156)", n, data)
	}
}

// TestClassicPcapAndNonNORM writes a classic pcap holding a NORM message, a
// UDP datagram that is not NORM, and an ARP frame: the NORM message is
// decoded, the others are counted, and nothing is fatal.
func TestClassicPcapAndNonNORM(t *testing.T) {
	// A minimal NORM_CMD(EOT) built by hand.
	norm := []byte{0x13, 0x04, 0, 7, 0x0a, 0x4d, 0, 1, 0x68, 0x7f, 0xa6, 0x02, 2, 0, 0, 0}
	path := filepath.Join(t.TempDir(), "classic.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{1, 0, 0x5e, 0x7f, 1, 1}, EthernetType: layers.EthernetTypeIPv4}
	writeUDP := func(payload []byte) {
		ip := &layers.IPv4{Version: 4, TTL: 1, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 77, 0, 1}, DstIP: net.IP{239, 255, 1, 1}}
		udp := &layers.UDP{SrcPort: 5000, DstPort: 6003}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(b), Length: len(b)}, b); err != nil {
			t.Fatal(err)
		}
	}
	writeUDP(norm)
	writeUDP([]byte("GET / HTTP/1.0"))
	arp := gopacket.NewSerializeBuffer()
	arpEth := *eth
	arpEth.EthernetType = layers.EthernetTypeARP
	if err := gopacket.SerializeLayers(arp, gopacket.SerializeOptions{FixLengths: true}, &arpEth, &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		SourceHwAddress: eth.SrcMAC, SourceProtAddress: []byte{10, 77, 0, 1}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 77, 0, 2},
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(2, 0), CaptureLength: len(arp.Bytes()), Length: len(arp.Bytes())}, arp.Bytes()); err != nil {
		t.Fatal(err)
	}
	f.Close()

	code, out, errOut := runCmd(t, "--summary", path)
	if code != 0 || out != "CMD 1\nCMD(EOT) 1\nNOT-NORM 1\n" {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(errOut, "1 UDP datagrams that are not NORM, 1 frames that are not UDP") {
		t.Fatalf("stderr %q does not report the skipped packets", errOut)
	}
	code, out, _ = runCmd(t, path)
	if code != 0 || !strings.Contains(out, "10.77.0.1:5000 > 239.255.1.1:6003 CMD(EOT) seq=7 src=0a4d0001 inst=26751") {
		t.Fatalf("exit %d, text output %q", code, out)
	}
}

func TestErrors(t *testing.T) {
	if code, _, errOut := runCmd(t, filepath.Join(t.TempDir(), "missing.pcap")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
	junk := filepath.Join(t.TempDir(), "junk.pcap")
	if err := os.WriteFile(junk, []byte("this is not a capture file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, junk); code != 1 || !strings.Contains(errOut, "not a pcap or pcapng file") {
		t.Errorf("junk file: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCmd(t); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
	if code, _, _ := runCmd(t, "--json", "--summary", "x"); code != 2 {
		t.Errorf("--json with --summary: exit %d, want 2", code)
	}
}
