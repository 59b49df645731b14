package wal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv, when set to a directory, makes TestCrashRecovery act as the
// child: append to the log in that directory until killed.
const crashChildEnv = "CERTSRV_WAL_CRASH_CHILD"

// crashRoundsEnv overrides the number of crash rounds.
const crashRoundsEnv = "CERTSRV_CRASH_ROUNDS"

const crashSegment = 8 << 10

// crashPayload is what child writer w puts in its seq-th record.
func crashPayload(w, seq int) []byte {
	p := fmt.Appendf(nil, "w%d s%d ", w, seq)
	for i := range (w*131 + seq*17) % 300 {
		p = append(p, byte('a'+(i+seq)%26))
	}
	return p
}

// runCrashChild appends from 16 goroutines and prints "ack LSN W SEQ" for
// every Append that returned, until the process is killed.
func runCrashChild(dir string) {
	l, err := Open(Options{Dir: dir, SegmentSize: crashSegment})
	if errors.Is(err, fs.ErrNotExist) {
		l, err = Create(Options{Dir: dir, SegmentSize: crashSegment})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for w := range 16 {
		go func() {
			for seq := 0; ; seq++ {
				lsn, err := l.Append(context.Background(), RecordType(w+1), append([]byte(run+" "), crashPayload(w, seq)...))
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %s %d %d\n", lsn, run, w, seq)
				mu.Unlock()
			}
		}()
	}
	select {}
}

type ack struct {
	lsn     LSN
	payload string
	typ     RecordType
}

// crashRound starts a child on dir, kills it with SIGKILL after a random
// 10-200 ms and returns the records it acknowledged.
func crashRound(t *testing.T, dir string) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acks []ack
	var parseErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 5 || f[0] != "ack" {
				continue // a line cut by the kill, or test framework output
			}
			lsn, err1 := strconv.ParseUint(f[1], 10, 64)
			w, err2 := strconv.Atoi(f[3])
			seq, err3 := strconv.Atoi(f[4])
			if err := errors.Join(err1, err2, err3); err != nil {
				parseErr = err
				continue
			}
			acks = append(acks, ack{lsn: lsn, typ: RecordType(w + 1), payload: f[2] + " " + string(crashPayload(w, seq))})
		}
	}()
	time.Sleep(10*time.Millisecond + rand.N(190*time.Millisecond))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended by %v, not by SIGKILL; stderr: %s", err, stderr.String())
	}
	if parseErr != nil {
		t.Fatalf("child output: %v", parseErr)
	}
	return acks
}

func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
		return
	}
	rounds := 20
	if s := os.Getenv(crashRoundsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q is not a positive number", crashRoundsEnv, s)
		}
		rounds = n
	}
	dir := t.TempDir()
	acked := map[LSN]ack{}
	repaired := 0
	for round := range rounds {
		for _, a := range crashRound(t, dir) {
			if _, dup := acked[a.lsn]; dup {
				t.Fatalf("round %d: LSN %d acknowledged twice", round, a.lsn)
			}
			acked[a.lsn] = a
		}
		var logbuf strings.Builder
		logger := slog.New(slog.NewTextHandler(&logbuf, nil))
		l, err := Open(Options{Dir: dir, SegmentSize: crashSegment, Logger: logger})
		if strings.Contains(logbuf.String(), "cut torn tail") || strings.Contains(logbuf.String(), "removed") {
			repaired++
		}
		if errors.Is(err, fs.ErrNotExist) && len(acked) == 0 {
			continue // killed before the log was created
		}
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		seen := 0
		prev := LSN(0)
		err = l.ReadFrom(context.Background(), 0, func(r Record) error {
			if r.LSN != prev+1 {
				return fmt.Errorf("LSN %d after %d", r.LSN, prev)
			}
			prev = r.LSN
			if a, ok := acked[r.LSN]; ok {
				if string(r.Payload) != a.payload || r.Type != a.typ {
					return fmt.Errorf("LSN %d: record %d %q, acknowledged %d %q", r.LSN, r.Type, r.Payload, a.typ, a.payload)
				}
				seen++
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if seen != len(acked) {
			t.Fatalf("round %d: %d of %d acknowledged records found (log ends at %d)", round, seen, len(acked), prev)
		}
		gens := l.Current()
		closeLog(t, l)
		t.Logf("round %d: %d acknowledged so far, log ends at LSN %d in generation %d", round, len(acked), prev, gens)
	}
	if len(acked) == 0 {
		t.Fatal("no child acknowledged any record")
	}
	t.Logf("%d of %d reopens repaired a torn tail, a torn creation or a stray file", repaired, rounds)
}
