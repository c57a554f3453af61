package nats

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks"
)

// credsFixture is an operator, an account and a user of that account, for
// decentralised (JWT) authentication.
type credsFixture struct {
	operator   *jwt.OperatorClaims
	accountPub string
	accountJWT string
	creds      string // the user's credentials file
}

func testCreds(t testing.TB) credsFixture {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, err := okp.PublicKey()
	must(err)
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(okp)
	must(err)
	operator, err := jwt.DecodeOperatorClaims(ojwt)
	must(err)

	akp, err := nkeys.CreateAccount()
	must(err)
	apub, err := akp.PublicKey()
	must(err)
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	must(err)

	ukp, err := nkeys.CreateUser()
	must(err)
	upub, err := ukp.PublicKey()
	must(err)
	useed, err := ukp.Seed()
	must(err)
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	must(err)
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	must(err)
	return credsFixture{operator: operator, accountPub: apub, accountJWT: ajwt, creds: string(creds)}
}

// trust makes a server trust the fixture's operator and know its account.
func (c credsFixture) trust(t testing.TB, o *server.Options) {
	t.Helper()
	r := &server.MemAccResolver{}
	if err := r.Store(c.accountPub, c.accountJWT); err != nil {
		t.Fatal(err)
	}
	o.TrustedOperators = []*jwt.OperatorClaims{c.operator}
	o.AccountResolver = r
}

// TestAuth connects with each authentication method; the events must reach
// a subscriber. Wrong credentials leave New working and make Deliver fail
// with a retryable error that says why.
func TestAuth(t *testing.T) {
	dir := t.TempDir()
	const token, password = "t0ken-for-tests", "passw0rd-for-tests"
	tokenFile := writeFile(t, dir, "token", token+"\n")
	passwordFile := writeFile(t, dir, "password", password)
	wrongFile := writeFile(t, dir, "wrong", "wrong")

	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()
	seedFile := writeFile(t, dir, "user.nk", string(userSeed))
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherSeedFile := writeFile(t, dir, "other.nk", string(otherSeed))

	creds := testCreds(t)
	credsFile := writeFile(t, dir, "user.creds", creds.creds)
	strangerFile := writeFile(t, dir, "stranger.creds", testCreds(t).creds) // another operator's user

	tokenServer := func(o *server.Options) { o.Authorization = token }
	userServer := func(o *server.Options) { o.Username, o.Password = "bridge", password }
	nkeyServer := func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: userPub}} }
	jwtServer := func(o *server.Options) { creds.trust(t, o); o.JetStream = false }

	tests := []struct {
		name   string
		server func(*server.Options)
		sink   func(*Config)
		client natsgo.Option // for the receiving test client
		fail   bool
	}{
		{name: "token", server: tokenServer, sink: func(c *Config) { c.Token = token }, client: natsgo.Token(token)},
		{name: "token file", server: tokenServer, sink: func(c *Config) { c.TokenFile = tokenFile }, client: natsgo.Token(token)},
		{name: "wrong token", server: tokenServer, sink: func(c *Config) { c.TokenFile = wrongFile }, fail: true},
		{name: "no token", server: tokenServer, sink: func(*Config) {}, fail: true},
		{name: "user and password", server: userServer, sink: func(c *Config) { c.User, c.Password = "bridge", password },
			client: natsgo.UserInfo("bridge", password)},
		{name: "password file", server: userServer, sink: func(c *Config) { c.User, c.PasswordFile = "bridge", passwordFile },
			client: natsgo.UserInfo("bridge", password)},
		{name: "wrong password", server: userServer, sink: func(c *Config) { c.User, c.Password = "bridge", "wrong" }, fail: true},
		{name: "nkey", server: nkeyServer, sink: func(c *Config) { c.NKeySeedFile = seedFile }, client: mustNkey(t, seedFile)},
		{name: "unknown nkey", server: nkeyServer, sink: func(c *Config) { c.NKeySeedFile = otherSeedFile }, fail: true},
		{name: "creds file", server: jwtServer, sink: func(c *Config) { c.CredsFile = credsFile }, client: natsgo.UserCredentials(credsFile)},
		{name: "creds of an untrusted operator", server: jwtServer, sink: func(c *Config) { c.CredsFile = strangerFile }, fail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(o *server.Options) { o.JetStream = false; tt.server(o) })
			cfg := testConfig(ts)
			tt.sink(&cfg)
			core, logs := observer.New(zap.InfoLevel)
			s, err := New(cfg, zap.New(core))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			batch := entries(t, 0, 5)
			if tt.fail {
				err := deliverUntil(t, s, batch, "uthorization")
				if !strings.Contains(err.Error(), "not connected") {
					t.Fatalf("Deliver: %v, want a 'not connected' error naming the authorization failure", err)
				}
				for _, secret := range []string{token, password, string(userSeed), string(otherSeed)} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error shows a secret: %v", err)
					}
				}
				if n := logs.FilterMessageSnippet("not reachable at startup").Len(); n != 1 {
					t.Errorf("%d startup warnings, want 1", n)
				}
				return
			}
			nc := ts.client(tt.client)
			sub, err := nc.SubscribeSync(">")
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := s.Deliver(context.Background(), batch); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			for i, e := range batch {
				m, err := sub.NextMsg(5 * time.Second)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				checkMessage(t, fmt.Sprintf("message %d", i), m.Subject, m.Header, m.Data, e, defaultSubject(t, e))
			}
		})
	}
}

func mustNkey(t *testing.T, seedFile string) natsgo.Option {
	t.Helper()
	opt, err := natsgo.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// pki is a CA with a server and a client certificate, as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
	client                                               tls.Certificate
}

func newPKI(t *testing.T, dir, name string) pki {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	ca, err := x509.ParseCertificate(caDER)
	must(err)

	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, name+"-"+file)
		must(os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		must(err)
		kder, err := x509.MarshalECPrivateKey(key)
		must(err)
		return write(cn+".crt", "CERTIFICATE", der), write(cn+".key", "EC PRIVATE KEY", kder)
	}
	p := pki{caFile: write("ca.crt", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	p.client, err = tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	must(err)
	return p
}

// TestTLS connects over TLS and mutual TLS with certificates made here;
// the events must reach a subscriber. A server the sink cannot verify, or
// one that wants a client certificate it did not get, makes Deliver fail.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	good := newPKI(t, dir, "good")
	other := newPKI(t, dir, "other")

	tests := []struct {
		name    string
		mutual  bool
		tls     sinks.TLS
		fail    string // what the error says; "" for success
		warning bool   // verification off: one warning
	}{
		{name: "tls", tls: sinks.TLS{CAFile: good.caFile}},
		{name: "mutual tls", mutual: true, tls: sinks.TLS{CAFile: good.caFile, CertFile: good.clientCert, KeyFile: good.clientKey}},
		{name: "server name", tls: sinks.TLS{CAFile: good.caFile, ServerName: "127.0.0.1"}},
		{name: "unknown authority", tls: sinks.TLS{CAFile: other.caFile}, fail: "certificate"},
		{name: "verification off", tls: sinks.TLS{CAFile: other.caFile, InsecureSkipVerify: true}, warning: true},
		{name: "mutual tls without a client certificate", mutual: true, tls: sinks.TLS{CAFile: good.caFile}, fail: "not connected"},
		{name: "client certificate of another authority", mutual: true,
			tls: sinks.TLS{CAFile: good.caFile, CertFile: other.clientCert, KeyFile: other.clientKey}, fail: "not connected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(o *server.Options) {
				tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: good.serverCert, KeyFile: good.serverKey, CaFile: good.caFile, Verify: tt.mutual})
				if err != nil {
					t.Fatal(err)
				}
				o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = tc, true, tt.mutual, 2
			})
			cfg := testConfig(ts)
			if !strings.HasPrefix(cfg.URL, "tls://") {
				t.Fatalf("URL %s, want tls://", cfg.URL)
			}
			cfg.TLS = tt.tls
			core, logs := observer.New(zap.WarnLevel)
			s, err := New(cfg, zap.New(core))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			if got := logs.FilterMessageSnippet("verification is OFF").Len(); (got == 1) != tt.warning {
				t.Errorf("%d warnings about verification, want %v", got, tt.warning)
			}
			batch := entries(t, 0, 5)
			if tt.fail != "" {
				// The cause of a failed attempt is known once the client
				// library has reported it, which it does asynchronously.
				err := deliverUntil(t, s, batch, tt.fail)
				if !strings.Contains(err.Error(), "not connected") {
					t.Errorf("Deliver: %v, want a 'not connected' error", err)
				}
				return
			}
			nc := ts.client(natsgo.Secure(&tls.Config{RootCAs: good.pool, Certificates: []tls.Certificate{good.client}, MinVersion: tls.VersionTLS12}))
			sub, err := nc.SubscribeSync(">")
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := s.Deliver(context.Background(), batch); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			for i, e := range batch {
				m, err := sub.NextMsg(5 * time.Second)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				checkMessage(t, fmt.Sprintf("message %d", i), m.Subject, m.Header, m.Data, e, defaultSubject(t, e))
			}
		})
	}
}

// deliverUntil calls Deliver until its error says want, and returns that
// error; Deliver must keep failing.
func deliverUntil(t *testing.T, s *Sink, batch []pipeline.Entry, want string) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Deliver(context.Background(), batch)
		if err == nil {
			t.Fatal("Deliver succeeded")
		}
		if strings.Contains(err.Error(), want) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("Deliver: %v, want an error saying %q", err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCredentialFileRotation: token_file and password_file are read again
// when they change, so new credentials work at the next reconnection
// without a restart of the sink.
func TestCredentialFileRotation(t *testing.T) {
	tests := []struct {
		name   string
		server func(o *server.Options, secret string)
		sink   func(c *Config, file string)
	}{
		{name: "token_file", server: func(o *server.Options, secret string) { o.Authorization = secret },
			sink: func(c *Config, file string) { c.TokenFile = file }},
		{name: "password_file", server: func(o *server.Options, secret string) { o.Username, o.Password = "bridge", secret },
			sink: func(c *Config, file string) { c.User, c.PasswordFile = "bridge", file }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, t.TempDir(), "secret", "first-secret")
			ts := startServer(t, func(o *server.Options) { o.JetStream = false; tt.server(o, "first-secret") })
			cfg := testConfig(ts)
			tt.sink(&cfg, file)
			s := mustNew(t, cfg)
			if err := s.Deliver(context.Background(), entries(t, 0, 2)); err != nil {
				t.Fatalf("with the first secret: %v", err)
			}
			// The server now wants a new secret; the file gets it (with a
			// different size, so the change is seen even within the same
			// modification-time tick).
			ts.stop()
			tt.server(&ts.opts, "second-secret-rotated")
			ts.start()
			writeFile(t, filepath.Dir(file), "secret", "second-secret-rotated")
			deadline := time.Now().Add(20 * time.Second)
			for {
				err := s.Deliver(context.Background(), entries(t, 2, 2))
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after rotation: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
