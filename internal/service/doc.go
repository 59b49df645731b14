// Package service is the running certificate authority: it joins the pure
// CA logic of internal/ca (keys, request checks, issuance, CRL signing) to
// the database of internal/store and the data directory of internal/datadir.
// The admin API (internal/server) calls it; so do the local commands (init,
// install-cert, key restore) and restore.
//
// # Life cycle
//
// Init creates a CA in an empty data directory: configuration, CA key and
// certificate (or, for a subordinate, a request that InstallCert later
// answers), the admin trust anchor and server TLS certificate in tls/, the
// admin client credential in admin/, the database with principal "admin"
// holding every role, and the first published files. Open loads all of it
// once — the configuration is not read again and the CA key is parsed
// once — and opens the database with soft recovery. The caller of Open
// holds the data directory's lock; KeyRestore, which runs while the CA is
// stopped, takes it itself.
//
// # Errors
//
// Every method reachable through the admin API returns an *apierr.Error for
// any failure a caller can cause, with the underlying sentinel (of package
// ca or store) kept as its cause, so both errors.Is(err,
// &apierr.Error{Code: apierr.PolicyDenied}) and errors.Is(err,
// ca.ErrSANNotAllowed) hold. Unexpected failures (disk, database) are
// apierr.Unexpected; context cancellation is returned unchanged. The local
// operations return this package's sentinels (ErrAlreadyInitialized,
// ErrNotInstalled, ErrKeyMismatch, ...) and *FileError values naming the
// file involved.
//
// # Enrollment policy
//
// A request is a PKCS#10 CSR, PEM or DER, of at most ca.MaxCSRSize bytes,
// submitted under a profile (the configuration's "profiles", or
// ca.DefaultProfiles when none are configured; an empty profile name means
// "tls-server" when it exists, else the first profile). The request is
// checked by ca.CheckCSR in this order: size (TooLarge), structure
// (BadRequest), subject key type and size against the profile
// (PolicyDenied), self-signature (BadRequest), subject and alternative
// names against the profile (PolicyDenied). A request that fails writes
// nothing. A request that passes is recorded with its DER, subject,
// requested names ("DNS:", "IP:", "email:", "URI:" prefixed) and the
// submitting principal as requester. Under an auto-issue profile the
// certificate is signed at once with a fresh random serial (ca.NewSerial,
// 127 random bits; a collision with a stored serial is retried with a new
// one) and request and certificate are written in one durable log record
// (store.Enroll) before Submit returns. Under other profiles the request
// waits as pending; Approve checks it again against its profile as
// configured then and issues it, Deny records the officer's reason. Only a
// pending request can be approved or denied (BadRequestStatus otherwise).
//
// # Revocation
//
// Revoke takes a serial in any form ca.ParseSerial reads and a reason by
// RFC 5280 name or number (empty: unspecified; removeFromCRL is refused).
// A certificate on hold (certificateHold) may be revoked again with a final
// reason, or released by Unrevoke; any other revocation is final.
//
// # CRL numbering and delta CRLs
//
// Full and delta CRLs share one sequence of CRL numbers (RFC 5280 §5.2.3):
// each CRL published gets the highest number recorded so far, of either
// kind, plus one, so numbers grow strictly across both. A full CRL lists
// every revoked, unexpired certificate (holds included). A delta CRL
// carries a critical Delta CRL Indicator holding the number of the last
// full CRL (its base) and lists the current state of every certificate
// whose revocation state changed after the base was recorded: revoked ones
// with their reason, and ones released from hold as removeFromCRL. The
// rule "changed after the base was recorded" is exact because revocation
// changes and CRL publication are serialised: every change recorded before
// a CRL's log record is in that CRL, every later one has a larger LSN.
// Each CRL is recorded in the database first and then written atomically
// to publish/<Name>.crl (full) or publish/<Name>+.crl (delta), in DER.
// RunPublisher publishes on the configured intervals and repairs a
// published file left stale by a crash. Configuration: crl_validity
// (default seven days when zero), crl_overlap, crl_interval (default
// crl_validity), delta_crl_validity (zero disables delta CRLs) and
// delta_crl_interval (default delta_crl_validity).
//
// # Roles
//
// Principals are the common names of admin API client certificates. Each
// holds a set of roles — Administrator, Officer, Auditor, Operator,
// Enrollee, Reader (SPEC §5; names are case-insensitive on input and
// canonical on output) — and the SHA-256 fingerprints (Fingerprint) of
// the credentials issued to it. GrantRole adds roles and signs a new client
// credential with the admin trust anchor in tls/, registering its
// fingerprint in the same durable record; roles accumulate. RevokeRole
// revokes the principal for good: all its credentials stop working and the
// name cannot be reused. Authorize, called by the server for every RPC,
// returns a principal's roles only when the presented credential's
// fingerprint is registered for that principal and the principal is not
// revoked; it fails closed (AccessDenied, or Unexpected when the database
// cannot answer). Which role each RPC needs is the server's table.
//
// # Key backup
//
// The CA key is never in the database or its backups. BackupKey exports
// key, certificate and chain as PKCS#12 (ca.ExportPKCS12; a password of at
// least eight characters); KeyRestore installs such a file into a stopped
// CA, keeping the previous keys/ca.key as keys/ca.key.bak.
//
// # Files this package writes
//
// Every file is written with fsutil (temporary file, fsync, rename, fsync
// of the directory), so a crash leaves the old or the new file, never a
// mix. Paths are relative to the data directory.
//
//	keys/ca.key        PKCS#8 PEM: "PRIVATE KEY", or "ENCRYPTED PRIVATE KEY"
//	                   (PBES2, see ca.MarshalPrivateKey) with a passphrase; mode 0600
//	keys/ca.key.bak    the bytes of the ca.key that KeyRestore replaced; mode 0600
//	keys/ca.crt        the CA certificate, one "CERTIFICATE" PEM block
//	keys/chain.pem     the certificates above it, "CERTIFICATE" PEM blocks,
//	                   nearest issuer first, ending with the root; absent for a root CA
//	keys/ca.csr        a subordinate's request, one "CERTIFICATE REQUEST" PEM block
//	publish/<Name>.crt the CA certificate, DER (application/pkix-cert); mode 0644
//	publish/<Name>.crl the last full CRL, DER (application/pkix-crl); mode 0644
//	publish/<Name>+.crl the last delta CRL, DER; mode 0644
//	tls/trust.crt      the admin trust anchor (ca.NewTrustAnchor), PEM
//	tls/trust.key      its key, unencrypted PKCS#8 PEM, mode 0600
//	tls/server.crt     the server TLS certificate (ca.IssueServerCert), PEM
//	tls/server.key     its key, unencrypted PKCS#8 PEM, mode 0600
//	admin/client.crt, admin/client.key, admin/trust.crt
//	                   the admin credential (ca.WriteCredentialDir)
//	admin/server       one line, "host:port\n": the address a client on this
//	                   host dials (the configured listen address, an
//	                   unspecified host replaced by 127.0.0.1)
package service
