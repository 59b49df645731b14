// Package server is the certsrv daemon's network face: the gRPC admin API
// (services Admin and Backup of proto/certsrv/v1) and the plain-HTTP
// publication endpoint for the CA certificate and CRLs.
//
// # Transport and authentication
//
// The admin API speaks TLS 1.3 only. The server presents tls/server.crt
// (key tls/server.key) and requires a client certificate that chains to the
// admin trust anchor tls/trust.crt with the clientAuth extended key usage
// (tls.RequireAndVerifyClientCert); a client with no certificate, or one
// from another issuer, fails the handshake and no RPC runs. The caller's
// principal is the client certificate's subject common name, its
// fingerprint the lower-case hex SHA-256 of the certificate's DER. The CA
// (service.CA.Authorize) must know that fingerprint for that principal; it
// returns the principal's roles.
//
// The port carries two protocols after that one handshake, chosen by ALPN
// (alpn.go): gRPC over HTTP/2 ("h2", or no ALPN) for every RPC, and
// HTTP/1.1 ("http/1.1") for a single path, RawReadPath, which streams the
// open backup file's bytes as one response body (rawread.go). Its caller
// is authorized exactly as a Backup/ReadFile call (the same authorize
// function, the same role table entry), and the backup service applies the
// same session rules; anything else on that side is 404 or 405.
//
// # Authorization
//
// A unary and a stream interceptor run before every handler, in this order:
//  1. the method must appear in the role table (requiredRoles); a method
//     missing from it is refused with AccessDenied, whatever the caller
//     holds (fail closed);
//  2. the caller must present a verified client certificate
//     (Unauthenticated otherwise; in practice the handshake already
//     refused it);
//  3. while the server is suspended (SetSuspended), Ping runs without
//     consulting the CA and every other method answers ServerSuspended
//     (CERTSRV_E_SERVER_SUSPENDED, 0x80094006);
//  4. the CA must authorize the principal and fingerprint (AccessDenied
//     otherwise) and the principal must hold one of the method's roles
//     (AccessDenied otherwise).
//
// The role table (SPEC §5):
//
//	Ping                          any authenticated principal, even with no roles
//	Submit                        Enrollee
//	GetRequest                    Enrollee (own requests only), Officer, Auditor, Reader
//	Approve Deny Revoke Unrevoke  Officer
//	PublishCRL ImportCertificate  Officer
//	View                          Officer, Auditor, Reader
//	GetCACertificate              any role
//	GrantRole RevokeRole          Administrator
//	BackupKey                     Operator
//	Backup/* (all but below)      Operator
//	Backup/ServerControl          Operator or Administrator
//
// Successful authorizations are cached for Options.AuthCacheTTL (default
// one second); GrantRole and RevokeRole through the API empty the cache, so
// a principal revoked through the API is refused on its very next call.
//
// Every handler returns its error through apierr.Status, so a client sees
// a gRPC status with a google.rpc.ErrorInfo detail naming the condition and
// its certbcli.h HRESULT.
//
// # Publication endpoint
//
// GET (and HEAD) /CertEnroll/<name> serves the file <name> of the data
// directory's publish/ directory, as AD CS serves its CertEnroll folder.
// Only single, ordinary names ending in .crt (application/pkix-cert) or
// .crl (application/pkix-crl) are served; "..", percent-encoded dot
// segments, absolute paths, subdirectories, hidden names and anything that
// is not a regular file (a symbolic link is refused, never followed) get
// 404. The endpoint is plain HTTP on purpose: CA certificates and CRLs are
// public and signed, and AIA and CDP URLs are conventionally http.
//
// # Lifecycle
//
// New binds both listeners; Serve serves them, runs the CA's CRL publisher,
// and on stop (context cancelled, Shutdown, or ServerControl with
// CSCONTROL_SHUTDOWN) stops gracefully: it stops accepting, gives RPCs in
// progress Options.ShutdownTimeout, stops the publisher, closes the backup
// service and then the CA, whose database takes a final checkpoint so that
// the next open replays nothing.
package server
