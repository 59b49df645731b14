package server

import (
	"bytes"
	"errors"
	"net"
	"testing"
)

// countingConn records every Write a corkConn passes down.
type countingConn struct {
	net.Conn
	writes [][]byte
	fail   error
}

func (c *countingConn) Write(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func TestCorkConnGathersWrites(t *testing.T) {
	under := &countingConn{}
	c := &corkConn{Conn: under}
	// Uncorked: straight through.
	c.Write([]byte("a"))
	c.Write([]byte("b"))
	if len(under.writes) != 2 {
		t.Fatalf("%d writes passed down uncorked, want 2", len(under.writes))
	}
	// Corked: 64 TLS-record-sized writes become one.
	c.cork()
	var want []byte
	for i := 0; i < 64; i++ {
		rec := bytes.Repeat([]byte{byte(i)}, 16<<10+22)
		want = append(want, rec...)
		if n, err := c.Write(rec); err != nil || n != len(rec) {
			t.Fatalf("corked Write = %d, %v", n, err)
		}
	}
	if n := len(under.writes) - 2; n > 1 {
		// 1,049,984 bytes: the 1 MiB buffer fills once.
		t.Fatalf("%d writes passed down while corked, want at most one", n)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	got := bytes.Join(under.writes[2:], nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("uncork sent %d bytes, want the %d written, in order", len(got), len(want))
	}
	if n := len(under.writes) - 2; n != 2 {
		t.Fatalf("overflow and uncork passed down %d writes, want 2", n)
	}
	// A write larger than the buffer goes straight through, after what
	// was gathered.
	under.writes = nil
	c.cork()
	c.Write([]byte("head"))
	big := make([]byte, corkBuffer+1)
	c.Write(big)
	c.uncork()
	if len(under.writes) != 2 || string(under.writes[0]) != "head" || len(under.writes[1]) != len(big) {
		t.Fatalf("big write: %d writes passed down, want the gathered bytes then the big one", len(under.writes))
	}
	// A failed flush is reported.
	under.fail = errors.New("broken pipe")
	c.cork()
	c.Write([]byte("lost"))
	if err := c.uncork(); err == nil {
		t.Fatal("uncork over a broken connection returned no error")
	}
}
