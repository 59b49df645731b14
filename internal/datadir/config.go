package datadir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/certsrv/certsrv/internal/fsutil"
)

// ConfigVersion is the version of certsrv.json this code writes and reads.
const ConfigVersion = 1

// Config is certsrv.json. It holds no secrets, so a backup set carries it
// (Config/certsrv.json) and a restore on a new host reuses it.
type Config struct {
	Version int    `json:"version"`
	CAName  string `json:"ca_name"`
	KeyType string `json:"key_type"`

	// Listen is the gRPC admin API address; HTTPListen the publication
	// endpoint's. Both default to loopback.
	Listen     string `json:"listen"`
	HTTPListen string `json:"http_listen"`
	// BaseURL prefixes the AIA and CDP URLs in issued certificates and the
	// URLs of dynamic files, e.g. "http://127.0.0.1:8080".
	BaseURL string `json:"base_url"`

	// LogBase is the log file name base ("ca").
	LogBase string `json:"log_base"`
	// LogSegmentSize is the size at which a log generation is rolled.
	LogSegmentSize int64 `json:"log_segment_size"`
	// CheckpointInterval bounds recovery time.
	CheckpointInterval Duration `json:"checkpoint_interval"`
	// CircularLogging deletes logs below the checkpoint automatically; log-only
	// backups are then refused.
	CircularLogging bool `json:"circular_logging"`
	// MinFreeSpace is the free space, in bytes, the file systems of the log
	// and the database keep in reserve: below it writes are refused until
	// there is space again. Missing or 0 means 64 MiB, or a twentieth of a
	// smaller file system; negative turns the check off.
	MinFreeSpace int64 `json:"min_free_space,omitempty"`

	// CRL settings.
	CRLValidity      Duration `json:"crl_validity"`       // full CRL nextUpdate - thisUpdate
	CRLOverlap       Duration `json:"crl_overlap"`        // added to nextUpdate so clients never see an expired CRL
	CRLInterval      Duration `json:"crl_interval"`       // how often a full CRL is published
	DeltaCRLValidity Duration `json:"delta_crl_validity"` // 0 disables delta CRLs
	DeltaCRLInterval Duration `json:"delta_crl_interval"`

	// BackupLease is how long a backup session may stay idle before it is
	// aborted.
	BackupLease Duration `json:"backup_lease"`

	// Profiles are the enrollment profiles, by name, as JSON understood by
	// the CA package.
	Profiles json.RawMessage `json:"profiles,omitempty"`
}

// DefaultConfig returns the configuration a fresh CA gets.
func DefaultConfig(caName string) Config {
	return Config{
		Version:            ConfigVersion,
		CAName:             caName,
		KeyType:            "ecdsa-p256",
		Listen:             "127.0.0.1:8443",
		HTTPListen:         "127.0.0.1:8080",
		BaseURL:            "http://127.0.0.1:8080",
		LogBase:            "ca",
		LogSegmentSize:     4 << 20,
		CheckpointInterval: Duration(30 * time.Second),
		CRLValidity:        Duration(7 * 24 * time.Hour),
		CRLOverlap:         Duration(12 * time.Hour),
		CRLInterval:        Duration(24 * time.Hour),
		DeltaCRLValidity:   Duration(24 * time.Hour),
		DeltaCRLInterval:   Duration(time.Hour),
		BackupLease:        Duration(2 * time.Minute),
	}
}

// ErrBadConfig is returned for a configuration file that cannot be used.
var ErrBadConfig = errors.New("bad configuration")

// Validate checks the fields every command relies on.
func (c *Config) Validate() error {
	switch {
	case c.Version != ConfigVersion:
		return fmt.Errorf("%w: version %d, want %d", ErrBadConfig, c.Version, ConfigVersion)
	case c.CAName == "":
		return fmt.Errorf("%w: ca_name is empty", ErrBadConfig)
	case c.Listen == "" || c.HTTPListen == "":
		return fmt.Errorf("%w: listen and http_listen must name an address (host:port); an empty one would bind every interface", ErrBadConfig)
	case c.LogBase == "":
		return fmt.Errorf("%w: log_base is empty", ErrBadConfig)
	case c.LogSegmentSize < 64<<10:
		return fmt.Errorf("%w: log_segment_size %d is below 64 KiB", ErrBadConfig, c.LogSegmentSize)
	}
	return nil
}

// LoadConfig reads and validates certsrv.json.
func (d Dir) LoadConfig() (*Config, error) {
	b, err := os.ReadFile(d.ConfigPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", d.Root, ErrNotInitialized)
	}
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig decodes and validates a configuration file's bytes. Unknown
// fields are an error, so a typo does not silently fall back to a default.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s%v", ErrBadConfig, jsonErrorPlace(b, err), err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// jsonErrorPlace returns "line L, column C: " for a JSON syntax or type
// error, or "" when err carries no position.
func jsonErrorPlace(b []byte, err error) string {
	var off int64
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	default:
		return ""
	}
	if len(b) == 0 {
		return ""
	}
	off = min(max(off, 1), int64(len(b)))
	line := 1 + bytes.Count(b[:off-1], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(b[:off-1], '\n')) - 1
	return fmt.Sprintf("line %d, column %d: ", line, col)
}

// SaveConfig writes certsrv.json atomically.
func (d Dir) SaveConfig(c *Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(d.ConfigPath(), append(b, '\n'), 0o600)
}

// Duration is a time.Duration written as a string ("30s", "24h") in JSON.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
