package ca

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultProfiles(t *testing.T) {
	ps := DefaultProfiles()
	if len(ps) != 2 {
		t.Fatalf("%d default profiles", len(ps))
	}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			t.Errorf("default profile %s: %v", p.Name, err)
		}
		if !p.AutoIssue {
			t.Errorf("default profile %s does not auto-issue", p.Name)
		}
	}
	srv := profile(t, ProfileTLSServer)
	if !srv.SAN.RequireDNSOrIP || !srv.SAN.CopyCN || srv.SAN.Wildcard || srv.SAN.Email || srv.ExtKeyUsage[0] != "serverAuth" {
		t.Errorf("tls-server profile: %+v", srv)
	}
	cli := profile(t, ProfileTLSClient)
	if !cli.SAN.Email || !cli.SAN.URI || !cli.SAN.DNS || cli.SAN.IP || cli.ExtKeyUsage[0] != "clientAuth" {
		t.Errorf("tls-client profile: %+v", cli)
	}
	if _, err := FindProfile(ps, "code-signing"); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("FindProfile(unknown) = %v", err)
	}
}

func TestProfileJSONRoundTrip(t *testing.T) {
	data, err := json.MarshalIndent(DefaultProfiles(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"validity": "90d"`) {
		t.Errorf("validity not written in days:\n%s", data)
	}
	back, err := ParseProfiles(data)
	if err != nil {
		t.Fatalf("ParseProfiles: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(back, DefaultProfiles()) {
		t.Fatalf("round trip differs:\n%+v\n%+v", back, DefaultProfiles())
	}
}

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{`"90d"`: 90 * 24 * time.Hour, `"36h"`: 36 * time.Hour, `"1h30m"`: 90 * time.Minute} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("unmarshal %s = %v, %v", in, time.Duration(d), err)
		}
	}
	for _, in := range []string{`90`, `"90 days"`, `"d"`, `"1y"`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("unmarshal %s accepted: %v", in, time.Duration(d))
		}
	}
	b, _ := json.Marshal(Duration(36 * time.Hour))
	if string(b) != `"36h0m0s"` {
		t.Errorf("marshal 36h = %s", b)
	}
}

func TestProfileValidateRejects(t *testing.T) {
	base := profile(t, ProfileTLSServer)
	cases := []struct {
		field string
		edit  func(p *Profile)
	}{
		{"name", func(p *Profile) { p.Name = "" }},
		{"name", func(p *Profile) { p.Name = "TLS Server" }},
		{"validity", func(p *Profile) { p.Validity = Duration(time.Minute) }},
		{"validity", func(p *Profile) { p.Validity = Duration(20 * 365 * 24 * time.Hour) }},
		{"ext_key_usage", func(p *Profile) { p.ExtKeyUsage = nil }},
		{"ext_key_usage", func(p *Profile) { p.ExtKeyUsage = []string{"anyExtendedKeyUsage"} }},
		{"ext_key_usage", func(p *Profile) { p.ExtKeyUsage = []string{"serverAuth", "serverAuth"} }},
		{"allowed_key_types", func(p *Profile) { p.AllowedKeyTypes = nil }},
		{"allowed_key_types", func(p *Profile) { p.AllowedKeyTypes = []KeyType{"rsa-1024"} }},
		{"min_rsa_bits", func(p *Profile) { p.MinRSABits = 1024 }},
		{"san.wildcard", func(p *Profile) { p.SAN = SANPolicy{Email: true, Wildcard: true, Max: 1} }},
		{"san.require_dns_or_ip", func(p *Profile) { p.SAN = SANPolicy{Email: true, RequireDNSOrIP: true, Max: 1} }},
		{"san.copy_cn", func(p *Profile) { p.SAN = SANPolicy{URI: true, CopyCN: true, Max: 1} }},
		{"san.max", func(p *Profile) { p.SAN.Max = 0 }},
		{"san.max", func(p *Profile) { p.SAN = SANPolicy{Max: 3} }},
	}
	for _, c := range cases {
		p := base
		p.ExtKeyUsage = append([]string(nil), base.ExtKeyUsage...)
		c.edit(&p)
		err := p.Validate()
		var pe *ProfileError
		if !errors.Is(err, ErrBadProfile) || !errors.As(err, &pe) || pe.Field != c.field {
			t.Errorf("field %s: err = %v", c.field, err)
		}
	}
}

func TestParseProfilesRejects(t *testing.T) {
	good, _ := json.Marshal(DefaultProfiles()[:1])
	cases := map[string]string{
		"unknown field": `[{"name":"x","validity":"1d","ext_key_usage":["clientAuth"],"allowed_key_types":["ed25519"],"san":{},"colour":"red"}]`,
		"not an array":  `{"name":"x"}`,
		"duplicate":     "[" + string(good[1:len(good)-1]) + "," + string(good[1:len(good)-1]) + "]",
		"invalid":       `[{"name":"x","validity":"1d","ext_key_usage":[],"allowed_key_types":["ed25519"],"san":{}}]`,
	}
	for name, in := range cases {
		if _, err := ParseProfiles([]byte(in)); !errors.Is(err, ErrBadProfile) {
			t.Errorf("%s: err = %v, want ErrBadProfile", name, err)
		}
	}
	ok := `[{"name":"x","validity":"1d","ext_key_usage":["clientAuth"],"allowed_key_types":["ed25519"],"san":{}}]`
	ps, err := ParseProfiles([]byte(ok))
	if err != nil || len(ps) != 1 || ps[0].AutoIssue {
		t.Errorf("minimal profile: %+v, %v", ps, err)
	}
}
