package pipeline

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
)

// UpstreamTLS is the `tls` block of a source's configuration.
type UpstreamTLS struct {
	// CAFile is a PEM bundle that signs the appliance's certificate.
	CAFile string `koanf:"ca_file" json:"ca_file"`
	// InsecureSkipVerify turns certificate verification off (logged as a warning).
	InsecureSkipVerify bool `koanf:"insecure_skip_verify" json:"insecure_skip_verify"`
}

// UpstreamOptions configure the HTTP transport a poller talks to its
// appliance with.
type UpstreamOptions struct {
	// CAFile is a PEM bundle that signs the appliance's certificate; ""
	// uses the system roots.
	CAFile string
	// InsecureSkipVerify turns certificate verification off, with a warning.
	InsecureSkipVerify bool
	// ResponseTimeout bounds the wait for response headers.
	ResponseTimeout time.Duration
	// MaxIdleConnsPerHost is how many idle connections are kept.
	MaxIdleConnsPerHost int
	// Credentials names what an attacker could read without verification
	// ("the token"), for the warning.
	Credentials string
}

// NewUpstreamTransport returns a transport with TLS 1.2 or later,
// verification on unless turned off, and dial, handshake and header
// timeouts. Errors start with the config key they are about (tls.ca_file).
func NewUpstreamTransport(o UpstreamOptions, log *zap.Logger) (*http.Transport, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", o.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if o.InsecureSkipVerify {
		log.Warn("TLS certificate verification is OFF for this source (tls.insecure_skip_verify); anyone on the path can read " + o.Credentials)
		tlsCfg.InsecureSkipVerify = true
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.ResponseTimeout,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}, nil
}

// CertVerifyFailed reports whether err is a failed TLS certificate
// verification: an unknown authority, a name the certificate does not hold,
// an expired or otherwise invalid certificate. Some clients (NATS) keep only
// the message, so the crypto/tls wording counts too.
func CertVerifyFailed(err error) bool {
	if err == nil {
		return false
	}
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) ||
		strings.Contains(err.Error(), "failed to verify certificate")
}

// CertHint returns err with a hint at tls.ca_file when it is a failed
// certificate verification (CertVerifyFailed), and err itself otherwise, so
// a caller can tell the two apart by comparing. The caller names the host.
func CertHint(err error) error {
	if !CertVerifyFailed(err) {
		return err
	}
	return fmt.Errorf("%w (certificate verification failed: if a private CA signed the server's certificate, give that CA in tls.ca_file)", err)
}
