package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unicode/utf16"

	"github.com/certsrv/certsrv/certadm"
)

func TestEncodeList(t *testing.T) {
	files := []certadm.File{
		{Type: certadm.FileDatabase, Name: "/d/Zürich CA.db"},
		{Type: certadm.FileLogDirectory, Name: "/d/log"},
		{Type: certadm.FileDynamic, Name: "CA.crt", URL: "http://127.0.0.1:1/CertEnroll/CA.crt"},
		{Type: certadm.FileDynamic, Name: "CA.crl"},
	}
	got, err := encodeList(files)
	if err != nil {
		t.Fatal(err)
	}
	var want []uint16
	for _, s := range []string{"D/d/Zürich CA.db", "\u0082/d/log", "http://127.0.0.1:1/CertEnroll/CA.crt", "CA.crl"} {
		want = append(want, utf16.Encode([]rune(s))...)
		want = append(want, 0)
	}
	want = append(want, 0)
	if !slices.Equal(got, want) {
		t.Errorf("encodeList =\n%v\nwant\n%v", got, want)
	}
	if first := len(utf16.Encode([]rune("D/d/Zürich CA.db"))); got[0] != 'D' || got[first+1] != 0x82 {
		t.Errorf("tags are not single units: %v", got[:20])
	}

	empty, err := encodeList(nil)
	if err != nil || !slices.Equal(empty, []uint16{0}) {
		t.Errorf("empty list = %v, %v; want one zero unit", empty, err)
	}

	// A name above U+FFFF takes a surrogate pair.
	astral, err := encodeList([]certadm.File{{Type: certadm.FileLog, Name: "/l/\U0001F512.log"}})
	if err != nil || astral[4] != 0xD83D || astral[5] != 0xDD12 {
		t.Errorf("astral name encoded as %v, %v", astral, err)
	}

	if _, err := encodeList([]certadm.File{{Type: certadm.FileLog, Name: "/l/a\x00b.log"}}); err == nil {
		t.Error("a name with U+0000 was encoded; it would cut the list short")
	}
}

func TestDecodeUTF16(t *testing.T) {
	for _, tc := range []struct {
		name  string
		units []uint16
		want  string
		ok    bool
	}{
		{"ascii", []uint16{'a', 'b'}, "ab", true},
		{"empty", nil, "", true},
		{"bmp", []uint16{'Z', 0xFC}, "Zü", true},
		{"pair", []uint16{0xD83D, 0xDD12}, "\U0001F512", true},
		{"high at end", []uint16{'a', 0xD83D}, "", false},
		{"high then letter", []uint16{0xD83D, 'a'}, "", false},
		{"high then high", []uint16{0xD83D, 0xD83D, 0xDD12}, "", false},
		{"lone low", []uint16{0xDD12, 'a'}, "", false},
	} {
		got, err := decodeUTF16(tc.units)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: decodeUTF16(%v) = %q, %v; want %q, ok %v", tc.name, tc.units, got, err, tc.want, tc.ok)
		}
	}
}

func TestServerName(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8443":      "127.0.0.1:8443",
		`\\127.0.0.1:8443`:    "127.0.0.1:8443",
		`\\\\ca.example:8443`: "ca.example:8443",
		"":                    "",
	} {
		if got := serverName(in); got != want {
			t.Errorf("serverName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHandleTable(t *testing.T) {
	tab := newHandleTable()
	b := &entry{kind: kindBackup}
	r := &entry{kind: kindRestore}
	hb := tab.add(b)
	hr := tab.add(r)
	if hb == 0 || hr == 0 || hb == hr {
		t.Fatalf("handles %d and %d: want two distinct non-zero numbers", hb, hr)
	}
	if e, ok := tab.get(hb, kindBackup); !ok || e != b {
		t.Error("backup handle not found as a backup handle")
	}
	if _, ok := tab.get(hb, kindRestore); ok {
		t.Error("backup handle found as a restore handle")
	}
	if _, ok := tab.remove(hr, kindBackup); ok {
		t.Error("restore handle removed as a backup handle")
	}
	if _, ok := tab.get(hr, kindRestore); !ok {
		t.Error("a remove of the wrong kind removed the handle")
	}
	if e, ok := tab.remove(hb, kindBackup); !ok || e != b {
		t.Error("remove of the backup handle failed")
	}
	if _, ok := tab.get(hb, kindBackup); ok {
		t.Error("removed handle still found")
	}
	if next := tab.add(&entry{kind: kindBackup}); next == hb || next == hr {
		t.Errorf("handle %d was reused", next)
	}
	if n := tab.len(); n != 2 {
		t.Errorf("%d live handles, want 2", n)
	}
}

// TestHRESULTs checks the HRESULT of every condition the C layer reports
// itself, through wrapping, and that the sentinels stay reachable with
// errors.Is and the ArgError with errors.As.
func TestHRESULTs(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want uint32
	}{
		{nil, sOK},
		{&ArgError{"F", "p", errNullPointer}, ePointer},
		{fmt.Errorf("F: %w", errBadHandle), eHandle},
		{&ArgError{"F", "s", fmt.Errorf("%w: bad", errBadString)}, eInvalidArg},
		{&ArgError{"F", "cb", errBufferTooSmall}, eInsufficientBuffer},
		{fmt.Errorf("F: %w", errNoFile), hrInvalidBackupSequence},
		{fmt.Errorf("%w: list", errOutOfMemory), eOutOfMemory},
		{fmt.Errorf("read: %w", errReadTimeout), eTimeout},
		{fmt.Errorf("%w: boom", errPanic), eUnexpected},
		{fmt.Errorf("find credentials: %w", certadm.ErrNoCredentials), 0x80070002},
		{fmt.Errorf("x: %w", certadm.ErrInvalidArg), eInvalidArg},
		{fmt.Errorf("x: %w", certadm.ErrInvalidBackupSequence), hrInvalidBackupSequence},
		{restoreFailure(0x8000FFFF), eUnexpected},
	} {
		if got := hrOf(tc.err); got != tc.want {
			t.Errorf("hrOf(%v) = 0x%08X, want 0x%08X", tc.err, got, tc.want)
		}
	}
	err := fmt.Errorf("wrapped: %w", &ArgError{"CertSrvBackupRead", "pcbRead", errNullPointer})
	var ae *ArgError
	if !errors.As(err, &ae) || ae.Param != "pcbRead" || !errors.Is(err, errNullPointer) {
		t.Errorf("ArgError does not unwrap: %v", err)
	}
}

// TestHeaderAgreesWithGo reads include/certbcli.h and checks that its
// constants are the ones the Go side uses, and that every HRESULT the
// library can return has a name there.
func TestHeaderAgreesWithGo(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "include", "certbcli.h"))
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string]uint64{}
	re := regexp.MustCompile(`(?m)^\s*#define\s+(\w+)\s+(?:CERTBCLI_HR\(|\(\(CSBFT\)\(?)?(0x[0-9A-Fa-f]+|\d+)`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		v, err := strconv.ParseUint(m[2], 0, 64)
		if err != nil {
			t.Fatalf("%s: %v", m[0], err)
		}
		defs[m[1]] = v
	}
	// The CSBFT_* tags are written as (low bits | class bits).
	tagRe := regexp.MustCompile(`(?m)^#define\s+(CSBFT_\w+)\s+\(\(CSBFT\)\((0x[0-9a-f]+) \| (CSBFT_\w+)\)\)`)
	for _, m := range tagRe.FindAllStringSubmatch(string(b), -1) {
		low, _ := strconv.ParseUint(m[2], 0, 64)
		defs[m[1]] = low | defs[m[3]]
	}
	want := map[string]uint64{
		"CSBACKUP_TYPE_FULL":             uint64(certadm.BackupFull),
		"CSBACKUP_TYPE_LOGS_ONLY":        uint64(certadm.BackupLogsOnly),
		"CSRESTORE_TYPE_FULL":            uint64(certadm.RestoreFull),
		"CSCONTROL_SHUTDOWN":             uint64(certadm.ControlShutdown),
		"CSBFT_CERTSERVER_DATABASE":      uint64(certadm.FileDatabase),
		"CSBFT_LOG":                      uint64(certadm.FileLog),
		"CSBFT_LOG_DIR":                  uint64(certadm.FileLogDirectory),
		"CSBFT_CHECKPOINT_DIR":           uint64(certadm.FileCheckpointDirectory),
		"CSBFT_PATCH_FILE":               0x25,
		"CERTBCLI_MAX_STRING":            maxString,
		"S_OK":                           uint64(sOK),
		"S_FALSE":                        uint64(sFalse),
		"E_POINTER":                      uint64(ePointer),
		"E_HANDLE":                       uint64(eHandle),
		"E_OUTOFMEMORY":                  uint64(eOutOfMemory),
		"E_INVALIDARG":                   uint64(eInvalidArg),
		"E_UNEXPECTED":                   uint64(eUnexpected),
		"CERTBCLI_E_INSUFFICIENT_BUFFER": uint64(eInsufficientBuffer),
		"CERTBCLI_E_TIMEOUT":             uint64(eTimeout),
		"hrInvalidBackupSequence":        uint64(hrInvalidBackupSequence),
		"CERTBCLI_DIAL_TIMEOUT_SECONDS":  uint64(dialTimeout.Seconds()),
		"CERTBCLI_CALL_TIMEOUT_SECONDS":  uint64(callTimeout.Seconds()),
		"CERTBCLI_READ_TIMEOUT_SECONDS":  uint64(readTimeout.Seconds()),
	}
	for name, v := range want {
		got, ok := defs[name]
		if !ok {
			t.Errorf("certbcli.h does not define %s", name)
		} else if got != v {
			t.Errorf("certbcli.h: %s = 0x%X, Go uses 0x%X", name, got, v)
		}
	}

	// Every HRESULT of a certadm sentinel has a name in the header.
	named := map[uint64]bool{}
	for _, v := range defs {
		named[v] = true
	}
	for _, s := range []error{
		certadm.ErrAccessDenied, certadm.ErrUnauthenticated, certadm.ErrInvalidArg, certadm.ErrNotFound,
		certadm.ErrAlreadyExists, certadm.ErrUnexpected, certadm.ErrNotImplemented, certadm.ErrServerSuspended,
		certadm.ErrInvalidBackupSequence, certadm.ErrBackupInProgress, certadm.ErrNoBackup,
		certadm.ErrFullBackupNotTaken, certadm.ErrCircularLogging, certadm.ErrLogFileNotFound,
		certadm.ErrLogFileCorrupt, certadm.ErrAlreadyOpen, certadm.ErrRestoreInProgress,
		certadm.ErrIncrementalBackupDisabled, certadm.ErrUnavailable, certadm.ErrNoCredentials,
		certadm.ErrTruncatedFile, certadm.ErrInvalidData, certadm.ErrCARunning, certadm.ErrDiskFull,
		syscall.ENOSPC, syscall.EROFS, // local file system errors
	} {
		if hr := certadm.HRESULT(s); !named[uint64(hr)] {
			t.Errorf("certadm reports 0x%08X for %v; certbcli.h has no name for it", hr, s)
		}
	}
}

// TestHeaderCompiles compiles and runs a program using certbcli.h's types
// as C99 and as C11, with -pedantic: the header uses nothing beyond the
// standard, and LARGE_INTEGER's halves are where Windows puts them.
func TestHeaderCompiles(t *testing.T) {
	src := filepath.Join(t.TempDir(), "header.c")
	prog := `#include "certbcli.h"
#include <stdio.h>
int main(void) {
    LARGE_INTEGER li;
    li.QuadPart = 0x100000002LL;
    CSEDB_RSTMAPW m = {0, 0};
    FNCERTSRVBACKUPREAD *pfn = 0;
    int ok = li.u.LowPart == 2 && li.u.HighPart == 1 && sizeof(WCHAR) == 2 && sizeof(HRESULT) == 4 &&
             sizeof(DWORD) == 4 && sizeof(ULONG) == 4 && sizeof(LONG) == 4 && sizeof(LARGE_INTEGER) == 8 &&
             CSBFT_LOG == 0x21 && CSBFT_CERTSERVER_DATABASE == 'D' && FAILED(hrInvalidBackupSequence) &&
             SUCCEEDED(S_FALSE) && m.pwszDatabaseName == 0 && pfn == 0;
#if __STDC_VERSION__ >= 201112L
    ok = ok && li.LowPart == 2 && li.HighPart == 1;
#endif
    puts(ok ? "header ok" : "header wrong");
    return !ok;
}
`
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, std := range []string{"c99", "c11"} {
		bin := filepath.Join(t.TempDir(), "header-"+std)
		out, err := exec.Command("gcc", "-std="+std, "-Wall", "-Wextra", "-pedantic", "-Werror",
			"-I"+filepath.Join(repoRoot(t), "include"), "-o", bin, src).CombinedOutput()
		if err != nil {
			t.Fatalf("gcc -std=%s: %v\n%s", std, err, out)
		}
		if out, err := exec.Command(bin).CombinedOutput(); err != nil || !strings.Contains(string(out), "header ok") {
			t.Errorf("%s: %v: %s", std, err, out)
		}
	}
}
