package pipeline

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCertHint(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantHint bool
	}{
		{"nil", nil, false},
		{"unknown authority", fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), true},
		{"wrong name", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "soar.example"}, true},
		{"expired", x509.CertificateInvalidError{Reason: x509.Expired}, true},
		{"only the message (NATS)", errors.New("nats: tls error: tls: failed to verify certificate: x509: certificate signed by unknown authority"), true},
		{"refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CertHint(tt.err)
			if gotHint := got != nil && strings.Contains(got.Error(), "tls.ca_file"); gotHint != tt.wantHint {
				t.Fatalf("CertHint(%v) = %v; hint %v, want %v", tt.err, got, gotHint, tt.wantHint)
			}
			if tt.err != nil && !errors.Is(got, tt.err) && got.Error() != tt.err.Error() {
				t.Errorf("CertHint(%v) = %v, does not wrap the error", tt.err, got)
			}
			if CertVerifyFailed(tt.err) != tt.wantHint {
				t.Errorf("CertVerifyFailed(%v) = %v, want %v", tt.err, !tt.wantHint, tt.wantHint)
			}
		})
	}
}
