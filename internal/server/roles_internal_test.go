package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/service"
)

// TestRoleTableCoversEveryMethod checks that requiredRoles names every
// method of the Admin and Backup service descriptors, that every entry
// admits someone, and that it names no method the services lack (a typo
// there would leave the real method refused).
func TestRoleTableCoversEveryMethod(t *testing.T) {
	methods := map[string]bool{}
	for _, sd := range []grpc.ServiceDesc{certsrvv1.Admin_ServiceDesc, certsrvv1.Backup_ServiceDesc} {
		for _, m := range sd.Methods {
			methods["/"+sd.ServiceName+"/"+m.MethodName] = true
		}
		for _, s := range sd.Streams {
			methods["/"+sd.ServiceName+"/"+s.StreamName] = true
		}
	}
	if len(methods) != 25 {
		t.Fatalf("the services have %d methods, this test expects 25: review the table", len(methods))
	}
	for m := range methods {
		r, ok := requiredRoles[m]
		if !ok {
			t.Errorf("%s is missing from requiredRoles", m)
			continue
		}
		if !r.anyone && len(r.roles) == 0 {
			t.Errorf("%s admits nobody", m)
		}
	}
	for m := range requiredRoles {
		if !methods[m] {
			t.Errorf("requiredRoles names %s, which no service has", m)
		}
	}
}

// TestUnknownMethodRefused checks the fail-closed rule: a method missing
// from the table is refused before anything else is looked at (this
// Server has no CA and no peer; neither is reached).
func TestUnknownMethodRefused(t *testing.T) {
	s := &Server{}
	_, err := s.authorize(context.Background(), "/certsrv.v1.Admin/NotInTheTable")
	if apierr.Of(err) != apierr.AccessDenied {
		t.Fatalf("authorize of an unknown method: %v, want AccessDenied", err)
	}
}

// TestRoleCache checks the cache's rules: entries expire, invalidate
// forgets them, a lookup that started before an invalidation is not
// cached, and a TTL of zero or less disables caching.
func TestRoleCache(t *testing.T) {
	now := time.Now()
	k := cacheKey{"p", "f"}
	roles := service.Roles{service.RoleReader}

	c := newRoleCache(time.Second)
	c.put(k, roles, c.generation(), now)
	if got, ok := c.get(k, now.Add(500*time.Millisecond)); !ok || !got.Has(service.RoleReader) {
		t.Fatal("fresh entry not found")
	}
	if _, ok := c.get(k, now.Add(time.Second)); ok {
		t.Fatal("entry found at its expiry")
	}

	c.put(k, roles, c.generation(), now)
	c.invalidate()
	if _, ok := c.get(k, now); ok {
		t.Fatal("entry found after invalidate")
	}

	gen := c.generation() // a lookup starts...
	c.invalidate()        // ...a revocation lands...
	c.put(k, roles, gen, now)
	if _, ok := c.get(k, now); ok {
		t.Fatal("a lookup that raced an invalidation was cached")
	}

	for _, ttl := range []time.Duration{0, -1} {
		off := newRoleCache(ttl)
		off.put(k, roles, off.generation(), now)
		if _, ok := off.get(k, now); ok {
			t.Fatalf("TTL %v cached an entry", ttl)
		}
	}

	full := newRoleCache(time.Hour)
	for i := range maxCacheEntries + 1 {
		full.put(cacheKey{principal: "p", fingerprint: string(rune(i))}, roles, full.generation(), now)
	}
	if n := len(full.m); n > maxCacheEntries {
		t.Fatalf("cache holds %d entries, bound is %d", n, maxCacheEntries)
	}
}
