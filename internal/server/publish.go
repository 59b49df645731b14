package server

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/certsrv/certsrv/internal/fsutil"
)

// PublishPrefix is the URL path under which the files of publish/ are
// served, as AD CS serves its CertEnroll folder.
const PublishPrefix = "/CertEnroll/"

// contentTypes maps the extensions the publication endpoint serves to their
// media types (RFC 2585). Files with any other extension are not served.
var contentTypes = map[string]string{
	".crt": "application/pkix-cert",
	".crl": "application/pkix-crl",
}

// publishHandler serves GET and HEAD /CertEnroll/<name> from dir. It
// serves a file only when all of these hold, and answers 404 otherwise:
//   - name is one path element: no '/', no '\\', no NUL, not "." or "..",
//     not starting with '.' (percent-encoded forms are decoded first, so
//     "%2e%2e" is "..");
//   - name ends in .crt or .crl;
//   - dir/name is a regular file, checked with lstat (a symbolic link is
//     refused, never followed), and opened with O_NOFOLLOW, and the opened
//     file is the one that was checked.
//
// Other methods get 405. The handler never cleans or redirects paths.
type publishHandler struct {
	dir    string
	logger *slog.Logger
}

// ServeHTTP implements http.Handler.
func (h *publishHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, PublishPrefix)
	if !ok || !plainName(name) {
		http.NotFound(w, r)
		return
	}
	ctype, ok := contentTypes[strings.ToLower(filepath.Ext(name))]
	if !ok {
		http.NotFound(w, r)
		return
	}
	f, err := h.open(name)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			h.logger.Info("publication endpoint refused a file", "name", name, "err", err)
		}
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// errNotRegular is the reason open gives for a name that is not a regular
// file (a symbolic link, a directory, a device).
var errNotRegular = errors.New("not a regular file")

// open opens dir/name for reading if it is a regular file and not a
// symbolic link; the file opened is checked to be the same one lstat saw.
func (h *publishHandler) open(name string) (*os.File, error) {
	path, err := fsutil.Within(h.dir, name)
	if err != nil {
		return nil, err
	}
	before, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, errNotRegular
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	after, err := f.Stat()
	if err != nil || !after.Mode().IsRegular() || !os.SameFile(before, after) {
		f.Close()
		return nil, errNotRegular
	}
	return f, nil
}

// plainName reports whether name is a single, ordinary file name.
func plainName(name string) bool {
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return false
	}
	return !strings.ContainsAny(name, "/\\\x00")
}
