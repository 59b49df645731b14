package main

import (
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/clitest"
	"github.com/certsrv/certsrv/internal/verify"
)

func TestVerifyProgressLine(t *testing.T) {
	for _, c := range []struct {
		s     verifyState
		width int
		want  string
	}{
		{verifyState{}, 120, "verifying  0s"},
		{verifyState{hashed: 450e6, toHash: 1e9}, 120, "verifying: files 45 % (450.0 MB of 1.00 GB)  2s"},
		{verifyState{hashed: 450e6, toHash: 1e9, stage: verify.StageIntegrity}, 120,
			"verifying: files 45 % (450.0 MB of 1.00 GB), trial restore: integrity check  2s"},
		{verifyState{hashed: 1e9, toHash: 1e9, stage: verify.StageCerts, certs: 50000, ofCerts: 179000}, 120,
			"verifying: files checked, certificates 50000 of 179000 (27 %)  2s"},
		{verifyState{hashed: 1e9, toHash: 1e9, stage: verify.StageCerts}, 120,
			"verifying: files checked, certificates 0 of 0 (100 %)  2s"},
		{verifyState{hashed: 450e6, toHash: 1e9, stage: verify.StageIntegrity}, 40, "verifying: files 45 % (450.0 MB of 1.0…"},
	} {
		elapsed := 2*time.Second + 700*time.Millisecond
		if c.s == (verifyState{}) {
			elapsed = 300 * time.Millisecond
		}
		if got := c.s.line(elapsed, c.width); got != c.want {
			t.Errorf("%+v at width %d:\n got %q\nwant %q", c.s, c.width, got, c.want)
		}
	}
}

// TestVerifyCommandOnATerminal runs certadm verify with standard error on
// a terminal: the report on standard output is unchanged, every frame of
// the progress line says what is being verified, and the line is cleared
// at the end.
func TestVerifyCommandOnATerminal(t *testing.T) {
	isolate(t)
	dir := backedUpSet(t)
	term := clitest.FakeTerminal(t, &terminalOutput, 120)

	code, out, errOut := cli(t, "verify", "--no-write", dir)
	if code != exitOK || !strings.Contains(out, "result: OK") || errOut != "" {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	shown := term.String()
	if !strings.HasSuffix(shown, "\r\x1b[K") {
		t.Fatalf("the progress line was not cleared at the end: %q", shown)
	}
	frames := 0
	for _, f := range strings.Split(shown, "\r") {
		if f = strings.TrimSuffix(f, "\x1b[K"); f != "" {
			frames++
			if !strings.HasPrefix(f, "verifying") {
				t.Errorf("frame %q", f)
			}
		}
	}
	if frames == 0 {
		t.Error("no progress line was drawn")
	}
}
