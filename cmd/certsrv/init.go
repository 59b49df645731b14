package main

import (
	"fmt"
	"io"
	"net"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/service"
)

// initFlags are the flags of certsrv init.
type initFlags struct {
	name, key, passphraseFile string
	listen, http, baseURL     string
	subordinate               bool
}

func newInitCmd(a *app) *cobra.Command {
	var f initFlags
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a CA in the data directory",
		Long: `init creates a certificate authority in the data directory: the CA key and a
self-signed root certificate (or, with --subordinate, a certificate request for
a parent CA), the database, the configuration file, the admin API's TLS
material and an admin credential holding every role (in <data>/admin).

--http also sets the base URL of the AIA and CDP URLs in issued certificates
unless --base-url is given.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := a.dir()
			if err != nil {
				return err
			}
			opts, err := f.options(cmd)
			if err != nil {
				return err
			}
			undo := newTargetUndo(dir.Root) // a failed init leaves no trace
			l, err := lock(dir)
			if err != nil {
				return err
			}
			res, err := service.Init(cmd.Context(), dir, opts)
			if err != nil {
				l.Release()
				undo.run()
				return err
			}
			defer l.Release()
			printInitResult(a.stdout, dir, opts.Config.CAName, res, opts.Config.BaseURL, defaultBaseNote(f.http, f.baseURL))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", service.DefaultCAName, "CA common name (also the base of the published file names)")
	fl.StringVar(&f.key, "key", string(ca.DefaultKeyType), "CA key type: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519")
	fl.BoolVar(&f.subordinate, "subordinate", false, "write a certificate request for a parent CA instead of a self-signed certificate")
	fl.StringVar(&f.passphraseFile, "passphrase-file", "", "file holding a passphrase to encrypt the CA key with")
	fl.StringVar(&f.listen, "listen", "", "admin API address (default 127.0.0.1:8443)")
	fl.StringVar(&f.http, "http", "", "publication endpoint address (default 127.0.0.1:8080)")
	fl.StringVar(&f.baseURL, "base-url", "", "base of the AIA and CDP URLs (default http://<--http>)")
	return cmd
}

// options turns the flags into Init options.
func (f *initFlags) options(cmd *cobra.Command) (service.InitOptions, error) {
	kt, err := ca.ParseKeyType(f.key)
	if err != nil {
		return service.InitOptions{}, usagef("--key: %v", err)
	}
	if err := ca.CheckName(f.name); err != nil {
		return service.InitOptions{}, usagef("--name %q: %v", f.name, err)
	}
	pass, err := readSecret(f.passphraseFile, "passphrase")
	if err != nil {
		return service.InitOptions{}, err
	}
	cfg := datadir.DefaultConfig(f.name)
	cfg.KeyType = string(kt)
	if err := applyAddresses(&cfg, f.listen, f.http, f.baseURL); err != nil {
		return service.InitOptions{}, err
	}
	return service.InitOptions{Name: f.name, KeyType: kt, Passphrase: pass, Subordinate: f.subordinate, Config: &cfg}, nil
}

// applyAddresses sets the listen addresses and base URL of cfg from flags
// ("" leaves a field as it is). Without a base URL, an --http address with
// a fixed port gives "http://<--http>".
func applyAddresses(cfg *datadir.Config, listen, http, baseURL string) error {
	for flag, addr := range map[string]string{"--listen": listen, "--http": http} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return usagef("%s %q: want host:port", flag, addr)
		}
	}
	if listen != "" {
		cfg.Listen = listen
	}
	if http != "" {
		cfg.HTTPListen = http
		if _, port, _ := net.SplitHostPort(http); baseURL == "" && port != "0" {
			cfg.BaseURL = "http://" + http
		}
	}
	if baseURL != "" {
		cfg.BaseURL = baseURL
	}
	return nil
}

// defaultBaseNote says, when an --http address with port 0 left the base
// of the AIA and CDP URLs at the default (where nothing may be listening),
// to give --base-url; otherwise it is "".
func defaultBaseNote(http, baseFlag string) string {
	if _, port, err := net.SplitHostPort(http); err == nil && port == "0" && baseFlag == "" {
		return fmt.Sprintf("--http %s has no fixed port, so the base URL is the default; give --base-url with the address relying parties will fetch CRLs from", http)
	}
	return ""
}

// printInitResult tells the operator where things are, including the base
// of the AIA and CDP URLs every certificate will carry (and note, if any,
// about it), and what to do next.
func printInitResult(w io.Writer, dir datadir.Dir, name string, res *service.InitResult, baseURL, note string) {
	data := dir.Root
	base := func(label string) {
		fmt.Fprintf(w, "  %s%s\n", label, baseURL)
		if note != "" {
			fmt.Fprintf(w, "  note: %s\n", note)
		}
	}
	if res.Subordinate {
		fmt.Fprintf(w, "Created subordinate CA %q in %s\n", name, data)
		fmt.Fprintf(w, "  certificate request: %s (have the parent CA sign it)\n", res.CSRPath)
		fmt.Fprintf(w, "  admin credential:    %s\n", res.AdminDir)
		base("AIA/CDP base URL:    ")
		fmt.Fprintf(w, "Next: certsrv install-cert SIGNED.crt [--chain CHAIN.pem] --data %s\n", data)
		fmt.Fprintf(w, "then: certsrv serve --data %s\n", data)
		return
	}
	fmt.Fprintf(w, "Created root CA %q in %s\n", name, data)
	fmt.Fprintf(w, "  CA certificate:   %s\n", res.CACertPath)
	fmt.Fprintf(w, "  admin credential: %s\n", res.AdminDir)
	base("AIA/CDP base URL: ")
	fmt.Fprintf(w, "Next: certsrv serve --data %s\n", data)
}
