package ca

import (
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNewSerial(t *testing.T) {
	seen := map[string]bool{}
	long := 0
	for i := 0; i < 2000; i++ {
		n, err := NewSerial()
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckSerial(n); err != nil {
			t.Fatalf("NewSerial gave %s: %v", SerialString(n), err)
		}
		if n.BitLen() > 127 {
			t.Fatalf("serial %s has %d bits, want at most 127", SerialString(n), n.BitLen())
		}
		if n.BitLen() > 120 {
			long++
		}
		s := SerialString(n)
		if seen[s] {
			t.Fatalf("serial %s repeated", s)
		}
		seen[s] = true
	}
	// With 127 random bits almost every serial uses more than 120 of them;
	// a generator with far less entropy would fail this.
	if long < 1900 {
		t.Fatalf("only %d of 2000 serials exceed 120 bits", long)
	}
}

func TestParseSerialForms(t *testing.T) {
	want, _ := new(big.Int).SetString("0A1B2C", 16)
	for _, in := range []string{
		"0A1B2C", "0a1b2c", "A1B2C", "a1b2c", "000A1B2C", "0A:1B:2C", "0a:1b:2c", "A:1B:2C",
		"0x0A1B2C", "0XA1B2C", "serial=0A1B2C", "SERIAL=0a1b2c", " 0A 1B 2C ", "0A1B2C\n",
	} {
		got, err := ParseSerial(in)
		if err != nil || got.Cmp(want) != 0 {
			t.Errorf("ParseSerial(%q) = %v, %v; want %s", in, got, err, SerialString(want))
		}
	}
	// Exactly 20 octets with the top bit clear is the largest legal serial.
	max20 := "7F" + strings.Repeat("FF", 19)
	if _, err := ParseSerial(max20); err != nil {
		t.Errorf("20-octet serial: %v", err)
	}
}

func TestParseSerialRejects(t *testing.T) {
	for _, in := range []string{
		"", "   ", "0x", "serial=", "-0A", "0", "00:00", "0G", "0A-1B", "0A::1B", ":0A", "0A:", "0A  1B", "0A: 1B",
		"12.5", "é1", "80" + strings.Repeat("00", 19), strings.Repeat("FF", 21), "1" + strings.Repeat("0", 40),
	} {
		_, err := ParseSerial(in)
		var se *SerialError
		if !errors.Is(err, ErrBadSerial) || !errors.As(err, &se) {
			t.Errorf("ParseSerial(%q) err = %v, want ErrBadSerial", in, err)
		}
	}
}

func TestSerialString(t *testing.T) {
	cases := map[string]string{"A1B": "0A1B", "0a1b": "0A1B", "ff": "FF", "100": "0100", "00000001": "01"}
	for in, want := range cases {
		n, _ := new(big.Int).SetString(in, 16)
		if got := SerialString(n); got != want {
			t.Errorf("SerialString(%s) = %q, want %q", in, got, want)
		}
		back, err := ParseSerial(want)
		if err != nil || back.Cmp(n) != 0 {
			t.Errorf("ParseSerial(SerialString(%s)) = %v, %v", in, back, err)
		}
	}
	if SerialString(nil) != "" {
		t.Error("SerialString(nil) not empty")
	}
	if err := CheckSerial(big.NewInt(-5)); !errors.Is(err, ErrBadSerial) {
		t.Errorf("CheckSerial(-5) = %v", err)
	}
}

// TestParseSerialOpenSSLOutput parses the serial numbers openssl prints for
// certificates the CA issued: "serial=..." from -serial, and the
// colon-separated lower-case form of -text.
func TestParseSerialOpenSSLOutput(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	a := newTestRoot(t, "Serial CA", KeyECDSAP256, "", now)
	textRE := regexp.MustCompile(`Serial Number:\s*\n?\s*([0-9a-fA-F:]+)`)
	for i := 0; i < 20; i++ {
		c := issueFor(t, a, profile(t, ProfileTLSClient), testKey(t, KeyECDSAP256, 1), csrSpec{CN: "client"}, now)
		path := writeTemp(t, dir, "c.pem", certPEM(c))
		out := strings.TrimSpace(mustOpenSSL(t, "x509", "-in", path, "-noout", "-serial"))
		got, err := ParseSerial(out)
		if err != nil || got.Cmp(c.SerialNumber) != 0 {
			t.Fatalf("ParseSerial(%q) = %v, %v; want %s", out, got, err, SerialString(c.SerialNumber))
		}
		if "serial="+SerialString(c.SerialNumber) != out {
			t.Fatalf("openssl prints %q, canonical form is %q", out, SerialString(c.SerialNumber))
		}
		text := mustOpenSSL(t, "x509", "-in", path, "-noout", "-text")
		m := textRE.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no serial in openssl -text output:\n%s", text)
		}
		got, err = ParseSerial(m[1])
		if err != nil || got.Cmp(c.SerialNumber) != 0 {
			t.Fatalf("ParseSerial(%q) = %v, %v; want %s", m[1], got, err, SerialString(c.SerialNumber))
		}
	}
}
