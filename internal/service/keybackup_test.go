package service

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"os"
	"testing"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
)

const keyPassword = "correct horse battery"

func TestBackupKeyRestoreRoundTrip(t *testing.T) {
	dir := initDir(t)
	ctx := context.Background()
	c, err := Open(ctx, dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.BackupKey(ctx, "short")
	wantCode(t, err, apierr.InvalidArg)
	p12, name, err := c.BackupKey(ctx, keyPassword)
	if err != nil {
		t.Fatal(err)
	}
	if name != "Test CA.p12" {
		t.Errorf("file name %q", name)
	}
	// openssl reads the file with the password (PBES2/AES).
	p12Path := writeFile(t, t.TempDir(), name, p12)
	out := mustOpenSSL(t, "pkcs12", "-in", p12Path, "-passin", "pass:"+keyPassword, "-nokeys", "-info")
	if !bytes.Contains([]byte(out), []byte("PBES2")) || !bytes.Contains([]byte(out), []byte("CN = Test CA")) {
		t.Errorf("openssl pkcs12 -info:\n%s", out)
	}
	caCert := c.Certificate()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Lose the key, then restore it.
	oldKey, err := os.ReadFile(dir.CAKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir.CAKeyPath(), []byte("-----BEGIN PRIVATE KEY-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	damaged, _ := os.ReadFile(dir.CAKeyPath())
	if _, err := Open(ctx, dir, OpenOptions{}); err == nil {
		t.Fatal("Open succeeded with a damaged key")
	}
	if err := KeyRestore(ctx, dir, p12, keyPassword); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir.CAKeyPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored key mode %v, %v", fi.Mode().Perm(), err)
	}
	bak, err := os.ReadFile(dir.CAKeyPath() + ".bak")
	if err != nil || !bytes.Equal(bak, damaged) {
		t.Errorf("keys/ca.key.bak does not hold the replaced file: %v", err)
	}
	restored, _ := os.ReadFile(dir.CAKeyPath())
	k1, err1 := ca.ParsePrivateKey(oldKey, nil)
	k2, err2 := ca.ParsePrivateKey(restored, nil)
	if err1 != nil || err2 != nil || ca.KeyMatchesCert(k2, caCert) != nil || ca.KeyMatchesCert(k1, caCert) != nil {
		t.Fatalf("restored key does not match the CA certificate: %v %v", err1, err2)
	}
	c2 := openCA(t, dir)
	r, err := c2.Submit(ctx, "alice", serverCSR(t, "after-restore.example.test"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := parseCert(t, r.Certificate.DER).CheckSignatureFrom(caCert); err != nil {
		t.Errorf("certificate signed with the restored key: %v", err)
	}
}

func TestKeyRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	dir := initDir(t)
	other := newCA(t)
	otherP12, _, err := other.BackupKey(ctx, keyPassword)
	if err != nil {
		t.Fatal(err)
	}
	keyBefore, _ := os.ReadFile(dir.CAKeyPath())

	err = KeyRestore(ctx, dir, otherP12, keyPassword)
	if !errors.Is(err, ErrKeyMismatch) || !errors.Is(err, ca.ErrKeyMismatch) {
		t.Fatalf("KeyRestore with another CA's key = %v, want ErrKeyMismatch", err)
	}
	if err := KeyRestore(ctx, dir, otherP12, "wrong password"); !errors.Is(err, ca.ErrPassphrase) {
		t.Fatalf("KeyRestore with a wrong password = %v, want ca.ErrPassphrase", err)
	}
	lock, err := dir.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	err = KeyRestore(ctx, dir, otherP12, keyPassword)
	lock.Release()
	if !errors.Is(err, datadir.ErrLocked) {
		t.Fatalf("KeyRestore while the directory is locked = %v, want datadir.ErrLocked", err)
	}
	keyAfter, _ := os.ReadFile(dir.CAKeyPath())
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Error("a refused KeyRestore changed keys/ca.key")
	}
	if _, err := os.Stat(dir.CAKeyPath() + ".bak"); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused KeyRestore wrote keys/ca.key.bak")
	}
}

// TestKeyRestoreNewHost restores into a directory without keys/ca.crt: the
// certificate comes from the file, and the key can be encrypted on the way.
func TestKeyRestoreNewHost(t *testing.T) {
	ctx := context.Background()
	src := newCA(t)
	p12, _, err := src.BackupKey(ctx, keyPassword)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := datadir.New(t.TempDir())
	pass := []byte("new host passphrase")
	if err := KeyRestoreWithOptions(ctx, dst, p12, keyPassword, KeyRestoreOptions{Passphrase: pass}); err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(dst.CACertPath())
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ca.ParseCertsPEM(certPEM)
	if err != nil || !certs[0].Equal(src.Certificate()) {
		t.Fatalf("restored CA certificate differs: %v", err)
	}
	keyPEM, _ := os.ReadFile(dst.CAKeyPath())
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatal("restored key is not encrypted with the given passphrase")
	}
	key, err := ca.ParsePrivateKey(keyPEM, pass)
	if err != nil || ca.KeyMatchesCert(key, certs[0]) != nil {
		t.Fatalf("restored key: %v", err)
	}
	if _, err := os.Stat(dst.CAKeyPath() + ".bak"); !errors.Is(err, os.ErrNotExist) {
		t.Error("a backup copy was made although no key existed")
	}
}
