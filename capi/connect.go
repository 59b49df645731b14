package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certsrv/certsrv/certadm"
)

// Time limits, as CERTBCLI_*_TIMEOUT_SECONDS in include/certbcli.h.
const (
	// dialTimeout bounds connecting and proving the credential.
	dialTimeout = 10 * time.Second
	// callTimeout bounds every call to the server but the reading of file
	// data.
	callTimeout = 120 * time.Second
	// readTimeout is the longest CertSrvBackupRead waits for data without
	// receiving any.
	readTimeout = 120 * time.Second
)

// target is where and how an export connects.
type target struct {
	server   string
	credsDir string
}

func (t target) options() []certadm.Option {
	return []certadm.Option{certadm.WithCredentials(t.credsDir), certadm.WithDialTimeout(dialTimeout)}
}

// resolveTarget applies the rules of include/certbcli.h to the server name
// a caller passed, reading the environment through the C library so that
// the calling program's setenv counts:
//
//   - credentials: CERTADM_CREDS when set and not empty, else
//     ./certsrv-data/admin when it is a directory, else the call fails with
//     certadm.ErrNoCredentials;
//   - server: the name without leading backslashes when not empty, else
//     CERTADM_SERVER when set and not empty, else the first line of the
//     credentials directory's server file, else certadm.DefaultServer.
func resolveTarget(name string) (target, error) {
	var t target
	if v, ok := envCreds(); ok && v != "" {
		t.credsDir = v
	} else if fi, err := os.Stat(certadm.DefaultCredsDir); err == nil && fi.IsDir() {
		t.credsDir = certadm.DefaultCredsDir
	} else {
		wd, _ := os.Getwd()
		return t, fmt.Errorf("find credentials: %s is not set and %s does not exist in %s: %w",
			certadm.EnvCreds, certadm.DefaultCredsDir, wd, certadm.ErrNoCredentials)
	}
	t.server = serverName(name)
	if t.server != "" {
		return t, nil
	}
	if v, ok := envServer(); ok && v != "" {
		t.server = v
		return t, nil
	}
	b, err := os.ReadFile(filepath.Join(t.credsDir, certadm.CredsServerFile))
	switch {
	case err == nil:
		line, _, _ := strings.Cut(string(b), "\n")
		t.server = strings.TrimSpace(line)
	case !errors.Is(err, os.ErrNotExist):
		return t, fmt.Errorf("find server: %w", err)
	}
	if t.server == "" {
		t.server = certadm.DefaultServer
	}
	return t, nil
}

// callContext returns the context for one call to the server.
func callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}
