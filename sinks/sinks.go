// Package sinks holds what the sink implementations share: the keys every
// sink has (format, batch, start) and the TLS client options of the network
// sinks. Each sink lives in its own package below this one.
package sinks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/sinks/format"
)

// Where a sink seen for the first time starts reading the journal.
const (
	// StartEnd starts at the journal's end: only events committed from now
	// on (the default, so that adding a sink does not replay history).
	StartEnd = "end"
	// StartEarliest starts at the oldest event still retained.
	StartEarliest = "earliest"
)

// Common holds the keys every sink has. A sink's Config carries the same
// three koanf keys (format, batch, start) and returns them from its Common
// method, so the bridge can set up any sink's dispatcher alike.
type Common struct {
	// Format is the rendering of each event, one of format.Names.
	Format string
	// Batch is the most events handed to the sink at once.
	Batch int
	// Start is StartEnd or StartEarliest; it only matters the first time the
	// state file sees the sink.
	Start string
}

// Commoner is implemented by every sink's Config.
type Commoner interface {
	Common() Common
}

// Validate returns one "key: problem" error per problem.
func (c Common) Validate() []error {
	var errs []error
	if err := format.Validate(c.Format); err != nil {
		errs = append(errs, fmt.Errorf("format: %w", err))
	}
	if c.Batch < 1 || c.Batch > 100000 {
		errs = append(errs, errors.New("batch: must be between 1 and 100000"))
	}
	if c.Start != StartEnd && c.Start != StartEarliest {
		errs = append(errs, fmt.Errorf("start: must be %s or %s, got %q", StartEnd, StartEarliest, c.Start))
	}
	return errs
}

// TLS holds client TLS options. Verification is on unless
// InsecureSkipVerify says otherwise; CertFile and KeyFile together give a
// client certificate (mTLS).
type TLS struct {
	// CAFile is a PEM bundle of the authorities that sign the server's
	// certificate; empty means the system pool.
	CAFile string `koanf:"ca_file" json:"ca_file"`
	// CertFile and KeyFile are the client certificate and its key, in PEM.
	CertFile string `koanf:"cert_file" json:"cert_file"`
	KeyFile  string `koanf:"key_file" json:"key_file"`
	// ServerName overrides the name checked against the certificate.
	ServerName string `koanf:"server_name" json:"server_name"`
	// InsecureSkipVerify turns certificate verification off (a warning is
	// logged).
	InsecureSkipVerify bool `koanf:"insecure_skip_verify" json:"insecure_skip_verify"`
}

// Validate reads the files the options name and returns one error per
// problem, each starting with the key (relative to the tls block).
func (t TLS) Validate() []error {
	_, errs := t.build()
	return errs
}

// Config builds the tls.Config. A warning is logged when verification is
// off. log may be nil.
func (t TLS) Config(log *zap.Logger) (*tls.Config, error) {
	c, errs := t.build()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if t.InsecureSkipVerify && log != nil {
		log.Warn("TLS certificate verification is OFF (tls.insecure_skip_verify); anyone on the path can read and change the traffic")
	}
	return c, nil
}

func (t TLS) build() (*tls.Config, []error) {
	var errs []error
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // only when the user asks, with a warning
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("ca_file: %w", err))
		default:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("ca_file: %s holds no PEM certificate", t.CAFile))
			}
			c.RootCAs = pool
		}
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "" || t.KeyFile == "":
		errs = append(errs, errors.New("cert_file: cert_file and key_file go together"))
	default:
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("cert_file: %w", err))
		} else {
			c.Certificates = []tls.Certificate{pair}
		}
	}
	return c, errs
}
