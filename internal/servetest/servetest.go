// Package servetest runs `certsrv serve` as a process for tests and
// benchmarks that need the real program: it starts it, reads its
// addresses from its "listening on" line, keeps its standard error, and
// stops it. Not used outside tests.
package servetest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a running `certsrv serve`.
type Process struct {
	// Admin and HTTP are the addresses it reported: the admin API and the
	// publication endpoint.
	Admin, HTTP string

	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{}
	state  *os.ProcessState
}

var listeningRE = regexp.MustCompile(`^listening on (\S+) \(admin\) (\S+) \(http\)$`)

// Start runs the certsrv executable bin as `serve` with args and waits for
// its "listening on" line. The process is killed when the test ends if it
// still runs.
func Start(tb testing.TB, bin string, args ...string) *Process {
	tb.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	pr, pw := io.Pipe()
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		cmd.Wait()
		p.state = cmd.ProcessState
		pw.Close()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				found <- [2]string{m[1], m[2]}
			}
		}
	}()
	select {
	case addrs := <-found:
		p.Admin, p.HTTP = addrs[0], addrs[1]
	case <-p.exited:
		tb.Fatalf("certsrv serve exited early: %v\n%s", p.state, p.Stderr())
	case <-time.After(60 * time.Second):
		tb.Fatalf("certsrv serve did not report its addresses\n%s", p.Stderr())
	}
	return p
}

// Stderr is what the process has written to its standard error so far.
func (p *Process) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Pid is the process's ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited; ExitState then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitState is the exited process's state, nil before it exited.
func (p *Process) ExitState() *os.ProcessState {
	select {
	case <-p.exited:
		return p.state
	default:
		return nil
	}
}

// Stop sends SIGTERM and returns the exit status.
func (p *Process) Stop(tb testing.TB) int {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		tb.Fatalf("certsrv serve did not stop after SIGTERM\n%s", p.Stderr())
	}
	return p.state.ExitCode()
}

// WaitLog waits up to wait until the process's standard error holds want,
// failing the test if it does not or the process exits first.
func (p *Process) WaitLog(tb testing.TB, want string, wait time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for !strings.Contains(p.Stderr(), want) {
		select {
		case <-p.exited:
			if strings.Contains(p.Stderr(), want) {
				return
			}
			tb.Fatalf("certsrv serve exited before it said %q:\n%s", want, p.Stderr())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("certsrv serve never said %q:\n%s", want, p.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
