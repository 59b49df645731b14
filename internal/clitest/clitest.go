// Package clitest holds what the tests of the two command lines share.
package clitest

import (
	"bytes"
	"io"
	"sync"
	"testing"

	"github.com/spf13/cobra"
)

// CommandPaths lists every command under root as the words that name it
// (nil for root itself), depth first, leaving out cobra's help command.
func CommandPaths(root *cobra.Command) [][]string {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			if sub.Name() != "help" {
				walk(sub, append(append([]string{}, path...), sub.Name()))
			}
		}
	}
	walk(root, nil)
	return paths
}

// SyncBuffer is a bytes.Buffer that several goroutines may write while
// another reads it: what a test hands a command as its terminal.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FakeTerminal makes *detect, a command's terminal test (termline.Terminal
// or a stand-in), take every writer for a terminal width columns wide for
// the rest of the test, and returns the buffer that terminal shows.
func FakeTerminal(t testing.TB, detect *func(io.Writer) (io.Writer, int, bool), width int) *SyncBuffer {
	term := &SyncBuffer{}
	saved := *detect
	*detect = func(io.Writer) (io.Writer, int, bool) { return term, width, true }
	t.Cleanup(func() { *detect = saved })
	return term
}
