package datadir

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestConfigRoundTrip(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.LoadConfig(); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("LoadConfig on empty dir = %v, want ErrNotInitialized", err)
	}
	c := DefaultConfig("Test CA")
	if err := d.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	got, err := d.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got.CAName != "Test CA" || got.CheckpointInterval.D() != 30*time.Second || got.Listen != "127.0.0.1:8443" {
		t.Fatalf("round trip lost fields: %+v", got)
	}
}

func TestConfigRejectsUnknownFieldsAndBadValues(t *testing.T) {
	for name, body := range map[string]string{
		"unknown field": `{"version":1,"ca_name":"x","log_base":"ca","log_segment_size":1048576,"listn":"x"}`,
		"bad version":   `{"version":9,"ca_name":"x","log_base":"ca","log_segment_size":1048576}`,
		"no name":       `{"version":1,"ca_name":"","log_base":"ca","log_segment_size":1048576}`,
		"tiny segments": `{"version":1,"ca_name":"x","log_base":"ca","log_segment_size":10}`,
		"bad duration":  `{"version":1,"ca_name":"x","log_base":"ca","log_segment_size":1048576,"crl_validity":"soon"}`,
	} {
		if _, err := ParseConfig([]byte(body)); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: err = %v, want ErrBadConfig", name, err)
		}
	}
}

// A configuration file with a syntax or type error names the line and
// column, as an operator editing it needs.
func TestConfigErrorsNameTheLine(t *testing.T) {
	for name, c := range map[string]struct{ body, where string }{
		"syntax": {"{\n  \"version\": 1,\n  \"ca_name\": \"x\",,\n}", "line 3, column 18: "},
		"type":   {"{\n  \"version\": \"one\"\n}", "line 2, column 18: "},
		"empty":  {"", ""},
	} {
		_, err := ParseConfig([]byte(c.body))
		if !errors.Is(err, ErrBadConfig) || (c.where != "" && !strings.Contains(err.Error(), c.where)) {
			t.Errorf("%s: err = %v, want ErrBadConfig at %q", name, err, c.where)
		}
	}
}

// TestLockExcludesOtherProcess takes the lock here and checks that a second
// process (flock(1)) cannot take it, then that it can after Release.
func TestLockExcludesOtherProcess(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Fatalf("flock(1) is needed for this test: %v", err)
	}
	d, _ := New(t.TempDir())
	l, err := d.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Acquire(); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire = %v, want ErrLocked", err)
	}
	if err := exec.Command("flock", "-n", d.LockPath(), "true").Run(); err == nil {
		t.Fatal("another process took the lock while it was held")
	}
	l.Release()
	if err := exec.Command("flock", "-n", d.LockPath(), "true").Run(); err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	if d.Running() {
		t.Fatal("Running() true after release")
	}
	if _, err := os.Stat(d.LockPath()); err != nil {
		t.Fatal(err)
	}
}
