package backup

import (
	"github.com/certsrv/certsrv/internal/service"
)

// ForCA returns the Backup service of the open CA c: its database as the
// engine, its publish/ files as the dynamic files and, when opts.Lease is
// zero, the configuration's backup_lease. opts.Principal is required (the
// server's PrincipalFrom); opts.Shutdown may be nil. The caller closes the
// service before the CA.
func ForCA(c *service.CA, opts Options) (*Service, error) {
	if opts.Lease == 0 {
		if cfg := c.Config(); cfg != nil {
			opts.Lease = cfg.BackupLease.D()
		}
	}
	if opts.DynamicFiles == nil {
		opts.DynamicFiles = func() []DynamicFile { return DynamicFilesOf(c) }
	}
	return New(StoreEngine(c.Store()), opts)
}

// DynamicFilesOf returns c's dynamic files (its CA certificate and CRLs
// under publish/, with their URLs under base_url) as the backup service
// lists them.
func DynamicFilesOf(c *service.CA) []DynamicFile {
	files := c.DynamicFiles()
	out := make([]DynamicFile, len(files))
	for i, f := range files {
		out[i] = DynamicFile{Name: f.Name, Path: f.Path, URL: f.URL, Size: f.Size}
	}
	return out
}
