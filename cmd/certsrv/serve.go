package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/internal/backup"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/restore"
	"github.com/certsrv/certsrv/internal/server"
	"github.com/certsrv/certsrv/internal/service"
)

// serveFlags are the flags of certsrv serve.
type serveFlags struct {
	listen, http, passphraseFile string
}

func newServeCmd(a *app) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the CA: the admin API and the publication endpoint",
		Long: `serve runs the CA until SIGINT or SIGTERM, or until an Operator or
Administrator asks it to stop (certadm shutdown), then stops gracefully.

It holds the data directory's lock while it runs, so a second serve (or an
offline operation) on the same directory fails. On an empty or missing data
directory it first creates a CA with the defaults, as certsrv init would;
--listen and --http given then are written to the new configuration.
Otherwise --listen and --http override the configuration for this run only.

The bound addresses are printed to stderr as
"listening on ADDR (admin) ADDR (http)", and the admin address is written to
<data>/admin/server, where certadm looks for it; port 0 picks a free port.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "admin API address (default: the configuration's, 127.0.0.1:8443)")
	fl.StringVar(&f.http, "http", "", "publication endpoint address (default: the configuration's, 127.0.0.1:8080)")
	fl.StringVar(&f.passphraseFile, "passphrase-file", "", "file holding the CA key's passphrase")
	return cmd
}

func (a *app) serve(cmd *cobra.Command, f *serveFlags) error {
	logger, err := a.logger()
	if err != nil {
		return err
	}
	dir, err := a.dir()
	if err != nil {
		return err
	}
	for flag, addr := range map[string]string{"--listen": f.listen, "--http": f.http} {
		if _, _, err := net.SplitHostPort(addr); addr != "" && err != nil {
			return usagef("%s %q: want host:port", flag, addr)
		}
	}
	pass, err := readSecret(f.passphraseFile, "passphrase")
	if err != nil {
		return err
	}
	l, err := lock(dir)
	if err != nil {
		return err
	}
	defer l.Release()

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if !dir.Initialized() {
		if err := firstStart(cmd, a, dir, f, pass); err != nil {
			return err
		}
	}
	if err := recoverPending(ctx, a, dir, f.listen, pass, logger); err != nil {
		return err
	}
	c, err := service.Open(ctx, dir, service.OpenOptions{Passphrase: pass, Logger: logger})
	if err != nil {
		return fmt.Errorf("open CA in %s: %w", dir.Root, err)
	}
	// The server answers ServerControl itself and closes the backup
	// service (aborting any session) before it closes the CA.
	pub := &publicationBase{}
	bsvc, err := backup.ForCA(c, backup.Options{Principal: server.PrincipalFrom, ConnClosed: server.ConnClosed, Logger: logger, DynamicFiles: pub.dynamicFiles(c)})
	if err != nil {
		c.Close()
		return fmt.Errorf("start the backup service: %w", err)
	}
	srv, err := server.New(c, server.Options{
		Listen:        f.listen,
		HTTPListen:    f.http,
		Logger:        logger,
		BackupService: bsvc,
		Version:       version,
	})
	if err != nil {
		bsvc.Close()
		c.Close()
		return err
	}
	pub.set(c.Config(), clientAddr(srv.HTTPAddr()))
	adminAddr := clientAddr(srv.Addr())
	if err := fsutil.WriteFileAtomic(filepath.Join(dir.AdminDir(), "server"), []byte(adminAddr+"\n"), 0o644); err != nil {
		logger.Warn("could not record the admin address for certadm", "err", err)
	}
	fmt.Fprintf(a.stderr, "listening on %s (admin) %s (http)\n", srv.Addr(), srv.HTTPAddr())
	// Every page of the SQLite file is read once, beside the service: the
	// start verified the log, the checkpoint and the signatures, not the
	// pages (about a second per gigabyte).
	checkCtx, stopCheck := context.WithCancel(ctx)
	defer stopCheck()
	go checkPages(checkCtx, c, logger)
	return srv.Serve(ctx)
}

// checkPages runs the CA database's page check and logs its outcome; on
// damage the database refuses every call from then on, and the log line
// says how to restore it.
func checkPages(ctx context.Context, c *service.CA, logger *slog.Logger) {
	d, err := c.CheckPages(ctx)
	switch {
	case err == nil:
		logger.Info("database pages checked: ok", "duration", d.Round(time.Millisecond))
	case ctx.Err() != nil:
	default:
		logger.Error("database damaged: every call fails until it is restored", "err", err)
	}
}

// firstStart initializes an empty or missing data directory with the
// defaults and the addresses given on the command line.
func firstStart(cmd *cobra.Command, a *app, dir datadir.Dir, f *serveFlags, pass []byte) error {
	entries, err := os.ReadDir(dir.Root)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir.CAKeyPath()); err == nil {
		// certsrv key restore put a CA key here, ahead of a restore.
		return fmt.Errorf("%s holds a CA key but no configuration: restore a backup set into it (certsrv restore SET --data %s), which uses this key: %w",
			dir.Root, dir.Root, datadir.ErrNotInitialized)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(dir.LockPath()) {
			return fmt.Errorf("%s holds files but no configuration: run certsrv init there, or use an empty directory: %w", dir.Root, datadir.ErrNotInitialized)
		}
	}
	cfg := datadir.DefaultConfig(service.DefaultCAName)
	if err := applyAddresses(&cfg, f.listen, f.http, ""); err != nil {
		return err
	}
	res, err := service.Init(cmd.Context(), dir, service.InitOptions{Passphrase: pass, Config: &cfg})
	if err != nil {
		return fmt.Errorf("initialize %s: %w", dir.Root, err)
	}
	fmt.Fprintf(a.stderr, "initialized a new CA %q in %s; admin credential in %s\n", cfg.CAName, dir.Root, res.AdminDir)
	return nil
}

// clientAddr turns a bound address into one a local client can dial: an
// unspecified host (0.0.0.0, ::) becomes 127.0.0.1, a SAN of the server
// certificate.
func clientAddr(bound string) string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// recoverPending runs the hard recovery of a completed restore, if one is
// pending, before the CA is opened. While it runs, the admin address
// answers every client as suspended (CERTSRV_E_SERVER_SUSPENDED), when the
// data directory already has its TLS material; on a new host that gets its
// credentials during recovery, nothing listens until recovery ends. A
// registered but uncompleted restore refuses the start with a message that
// says how to complete or cancel it.
func recoverPending(ctx context.Context, a *app, dir datadir.Dir, listen string, pass []byte, logger *slog.Logger) error {
	rec, err := restore.Pending(dir)
	if err != nil {
		return err
	}
	if rec == nil {
		return nil
	}
	// The CA opens with its key after the recovery: a missing or wrong
	// passphrase is better said before the recovery than after it.
	if keyPEM, err := os.ReadFile(dir.CAKeyPath()); err == nil {
		if _, err := ca.ParsePrivateKey(keyPEM, pass); errors.Is(err, ca.ErrPassphraseRequired) || errors.Is(err, ca.ErrPassphrase) {
			return fmt.Errorf("the CA key %s is encrypted: %w; give --passphrase-file (nothing was recovered yet)", dir.CAKeyPath(), err)
		}
	}
	cfg, err := dir.LoadConfig()
	if err != nil {
		return err
	}
	if listen == "" {
		listen = cfg.Listen
	}
	ph, perr := server.StartPlaceholder(dir, cfg.CAName, listen, logger)
	switch {
	case perr != nil && rec.NewCredentials:
		// A new host: its server certificate is made at the end of the
		// recovery, so there is nothing to answer clients with before.
		logger.Info("hard recovery runs before the admin address opens: this data directory's TLS certificate and admin credential are made when it ends")
	case perr != nil:
		logger.Warn("hard recovery runs without answering clients", "err", perr)
	default:
		fmt.Fprintf(a.stderr, "suspended for restore on %s (admin) while hard recovery runs\n", ph.Addr())
	}
	res, err := restore.Recover(ctx, dir, restore.RecoverOptions{Logger: logger})
	if ph != nil {
		if serr := ph.Stop(); serr != nil {
			logger.Warn("stop the suspended listener", "err", serr)
		}
	}
	if err != nil {
		return fmt.Errorf("hard recovery of the pending restore: %w", err)
	}
	printRecovery(a, res)
	return nil
}

// publicationBase makes the dynamic-file URLs that backup clients fetch
// name where this run serves them. The URLs come from base_url; when
// base_url is the default pairing with http_listen ("http://" + http_listen,
// as certsrv init writes it) but this run listens elsewhere (--http, or
// port 0), they would name an address nobody serves. Only the URLs handed
// to backup clients change; certificates keep base_url in their AIA and
// CDP. set runs before Serve starts the goroutines that answer RPCs, so
// the fields need no lock.
type publicationBase struct {
	from, to string // replace the prefix from with to; both "" when not needed
}

func (p *publicationBase) set(cfg *datadir.Config, bound string) {
	if cfg == nil {
		return
	}
	actual := "http://" + bound
	if cfg.BaseURL != "http://"+cfg.HTTPListen || actual == cfg.BaseURL {
		return
	}
	p.from, p.to = cfg.BaseURL, actual
}

func (p *publicationBase) dynamicFiles(c *service.CA) func() []backup.DynamicFile {
	return func() []backup.DynamicFile {
		files := backup.DynamicFilesOf(c)
		for i, f := range files {
			if p.from != "" && strings.HasPrefix(f.URL, p.from+"/") {
				files[i].URL = p.to + strings.TrimPrefix(f.URL, p.from)
			}
		}
		return files
	}
}
