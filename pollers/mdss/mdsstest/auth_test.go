package mdsstest_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
)

// t0 is the manual clock's start in these tests.
var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

// answer is one HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

// req sends one request; hdr holds "Name: value" pairs.
func req(t *testing.T, s *mdsstest.Server, method, path, body string, hdr ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		r.Header[k] = []string{v} // as given, not canonicalised
	}
	resp, err := s.Client().Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b, err}
}

// get is an authenticated GET with the default API key.
func get(t *testing.T, s *mdsstest.Server, path string) answer {
	t.Helper()
	return req(t, s, "GET", path, "", "ApiKey: "+mdsstest.DefaultAPIKey)
}

type tokens struct {
	AccessToken            string `json:"accessToken"`
	RefreshToken           string `json:"refreshToken"`
	AccessTokenExpiryTime  string `json:"accessTokenExpiryTime"`
	RefreshTokenExpiryTime string `json:"refreshTokenExpiryTime"`
}

func login(t *testing.T, s *mdsstest.Server, user, pw string) tokens {
	t.Helper()
	a := req(t, s, "POST", "/api/user/authenticate", `{"userName":"`+user+`","password":"`+pw+`"}`)
	if a.status != 200 {
		t.Fatalf("authenticate: %d %s", a.status, a.body)
	}
	return decodeTokens(t, a)
}

func decodeTokens(t *testing.T, a answer) tokens {
	t.Helper()
	var tk tokens
	dec := json.NewDecoder(strings.NewReader(string(a.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tk); err != nil || tk.AccessToken == "" || tk.RefreshToken == "" {
		t.Fatalf("token answer %s: %v", a.body, err)
	}
	return tk
}

func refresh(t *testing.T, s *mdsstest.Server, tk tokens) answer {
	t.Helper()
	return req(t, s, "POST", "/api/user/refreshToken", `{"refreshToken":"`+tk.RefreshToken+`","accessToken":"`+tk.AccessToken+`"}`)
}

// scanList asks for the first page of scans with a bearer token.
func scanList(t *testing.T, s *mdsstest.Server, access string) int {
	t.Helper()
	return req(t, s, "GET", "/api/scan/0/10", "", "Authorization: Bearer "+access).status
}

func TestCredentials(t *testing.T) {
	s := mdsstest.NewServer(mdsstest.Options{})
	defer s.Close()
	tk := login(t, s, mdsstest.DefaultUser, mdsstest.DefaultPassword)
	tests := []struct {
		name   string
		hdr    []string
		status int
		auth   string
	}{
		{"api key", []string{"ApiKey: " + mdsstest.DefaultAPIKey}, 200, "apikey"},
		{"api key, lower-case name", []string{"apikey: " + mdsstest.DefaultAPIKey}, 200, "apikey"},
		{"api key, upper-case name", []string{"APIKEY: " + mdsstest.DefaultAPIKey}, 200, "apikey"},
		{"wrong api key", []string{"ApiKey: nope"}, 401, ""},
		{"bearer", []string{"Authorization: Bearer " + tk.AccessToken}, 200, "bearer"},
		{"bearer, lower-case scheme", []string{"Authorization: bearer " + tk.AccessToken}, 200, "bearer"},
		{"bare token", []string{"Authorization: " + tk.AccessToken}, 401, ""},
		{"refresh token as bearer", []string{"Authorization: Bearer " + tk.RefreshToken}, 401, ""},
		{"api key in Authorization", []string{"Authorization: Bearer " + mdsstest.DefaultAPIKey}, 401, ""},
		{"wrong bearer, good key", []string{"Authorization: Bearer x", "ApiKey: " + mdsstest.DefaultAPIKey}, 200, "apikey"},
		{"nothing", nil, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.ResetRequests()
			for _, path := range []string{"/api/scan/0/10", "/api/file/0/10?scanId=x"} {
				a := req(t, s, "GET", path, "", tt.hdr...)
				if a.status != tt.status {
					t.Errorf("%s: %d %s, want %d", path, a.status, a.body, tt.status)
				}
				if a.status == 401 && (string(a.body) != mdsstest.UnauthorizedBody || a.header.Get("WWW-Authenticate") != "Bearer") {
					t.Errorf("401 body %q, WWW-Authenticate %q", a.body, a.header.Get("WWW-Authenticate"))
				}
			}
			for _, r := range s.Requests() {
				if r.Auth != tt.auth {
					t.Errorf("logged Auth %q, want %q", r.Auth, tt.auth)
				}
			}
		})
	}
	if got := mdsstest.UnauthorizedBody; got != `{"message":"Unauthorized"}` {
		t.Errorf("UnauthorizedBody drifted: %s", got)
	}
}

func TestCredentialsConfigured(t *testing.T) {
	// Users only: no API key is accepted, not even the default one.
	s := mdsstest.NewServer(mdsstest.Options{Users: map[string]string{"Svc-Bridge": "pw"}})
	defer s.Close()
	if a := get(t, s, "/api/scan/0/1"); a.status != 401 {
		t.Errorf("default key with Users set: %d", a.status)
	}
	if a := req(t, s, "GET", "/api/scan/0/1", "", "ApiKey: "); a.status != 401 {
		t.Errorf("empty key: %d", a.status)
	}
	login(t, s, "svc-bridge", "pw") // user names are case-insensitive
	if a := req(t, s, "POST", "/api/user/authenticate", `{"userName":"svc-bridge","password":"PW"}`); a.status != 401 {
		t.Errorf("passwords are case-sensitive: %d", a.status)
	}
	// API key only: nobody can log in, not even the default user.
	k := mdsstest.NewServer(mdsstest.Options{APIKey: "k1"})
	defer k.Close()
	if a := req(t, k, "POST", "/api/user/authenticate", `{"userName":"admin","password":"admin-password"}`); a.status != 401 {
		t.Errorf("default user with APIKey set: %d", a.status)
	}
	if a := req(t, k, "GET", "/api/scan/0/1", "", "ApiKey: k1"); a.status != 200 {
		t.Errorf("key: %d", a.status)
	}
	k.SetAPIKey("k2")
	if a := req(t, k, "GET", "/api/scan/0/1", "", "ApiKey: k1"); a.status != 401 {
		t.Errorf("old key after SetAPIKey: %d", a.status)
	}
	if a := req(t, k, "GET", "/api/scan/0/1", "", "ApiKey: k2"); a.status != 200 {
		t.Errorf("new key: %d", a.status)
	}
}

func TestAuthenticate(t *testing.T) {
	clk := mdsstest.NewClock(t0.Add(123456789 * time.Nanosecond))
	s := mdsstest.NewServer(mdsstest.Options{Now: clk.Now, AccessTTL: 2 * time.Second, RefreshTTL: 5 * time.Second})
	defer s.Close()
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"good", "POST", "/api/user/authenticate", `{"userName":"admin","password":"admin-password"}`, 200},
		{"path case", "POST", "/api/User/Authenticate", `{"userName":"admin","password":"admin-password"}`, 200},
		{"key case", "POST", "/api/user/authenticate", `{"UserName":"admin","Password":"admin-password"}`, 200},
		{"wrong password", "POST", "/api/user/authenticate", `{"userName":"admin","password":"x"}`, 401},
		{"unknown user", "POST", "/api/user/authenticate", `{"userName":"eve","password":"admin-password"}`, 401},
		{"user name in the wrong key", "POST", "/api/user/authenticate", `{"username_":"admin","password":"admin-password"}`, 400},
		{"not JSON", "POST", "/api/user/authenticate", `userName=admin`, 400},
		{"no body", "POST", "/api/user/authenticate", ``, 400},
		{"GET", "GET", "/api/user/authenticate", ``, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := req(t, s, tt.method, tt.path, tt.body)
			if a.status != tt.status {
				t.Fatalf("got %d %s, want %d", a.status, a.body, tt.status)
			}
			if a.status != 200 {
				return
			}
			tk := decodeTokens(t, a)
			if tk.AccessTokenExpiryTime != "2026-11-23T08:00:02.123Z" || tk.RefreshTokenExpiryTime != "2026-11-23T08:00:05.123Z" {
				t.Errorf("expiry times %q %q", tk.AccessTokenExpiryTime, tk.RefreshTokenExpiryTime)
			}
			// The access token is a JWT whose exp is the expiry time.
			parts := strings.Split(tk.AccessToken, ".")
			if len(parts) != 3 {
				t.Fatalf("access token %q is not a JWT", tk.AccessToken)
			}
			raw, err := base64.RawURLEncoding.DecodeString(parts[1])
			var claims struct {
				Sub string `json:"sub"`
				Exp int64  `json:"exp"`
			}
			if err != nil || json.Unmarshal(raw, &claims) != nil || claims.Exp != t0.Add(2*time.Second).Unix() || claims.Sub != "admin" {
				t.Errorf("claims %s (%v)", raw, err)
			}
		})
	}
	if n := s.Authentications(); n != 3 {
		t.Errorf("Authentications %d, want 3", n)
	}
	if n := s.Unauthorized(); n != 2 {
		t.Errorf("Unauthorized %d, want 2", n)
	}
}

func TestTokenLifecycle(t *testing.T) {
	type step struct {
		name string
		do   func(t *testing.T)
	}
	clk := mdsstest.NewClock(t0)
	s := mdsstest.NewServer(mdsstest.Options{Now: clk.Now, AccessTTL: 2 * time.Second, RefreshTTL: 5 * time.Second})
	defer s.Close()
	var first, second, third tokens
	want := func(t *testing.T, tok string, status int) {
		t.Helper()
		if got := scanList(t, s, tok); got != status {
			t.Errorf("list with token: %d, want %d", got, status)
		}
	}
	steps := []step{
		{"login", func(t *testing.T) { first = login(t, s, "admin", "admin-password"); want(t, first.AccessToken, 200) }},
		{"just before access expiry", func(t *testing.T) { clk.Advance(1999 * time.Millisecond); want(t, first.AccessToken, 200) }},
		{"access expired", func(t *testing.T) { clk.Advance(time.Millisecond); want(t, first.AccessToken, 401) }},
		{"refresh", func(t *testing.T) {
			clk.Advance(time.Second) // t0+3s
			a := refresh(t, s, first)
			if a.status != 200 {
				t.Fatalf("refresh: %d %s", a.status, a.body)
			}
			second = decodeTokens(t, a)
			if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
				t.Error("refresh gave the same tokens")
			}
			// The new refresh token lives RefreshTTL from the refresh.
			if second.AccessTokenExpiryTime != "2026-11-23T08:00:05.000Z" || second.RefreshTokenExpiryTime != "2026-11-23T08:00:08.000Z" {
				t.Errorf("expiry %q %q", second.AccessTokenExpiryTime, second.RefreshTokenExpiryTime)
			}
			want(t, second.AccessToken, 200)
		}},
		{"old refresh token is spent", func(t *testing.T) {
			if a := refresh(t, s, first); a.status != 401 {
				t.Errorf("old refresh token: %d", a.status)
			}
		}},
		{"old access token lives to its own expiry", func(t *testing.T) {
			clk.Advance(500 * time.Millisecond) // t0+3.5s
			third = decodeTokens(t, refresh(t, s, second))
			want(t, second.AccessToken, 200)
			want(t, third.AccessToken, 200)
			clk.Advance(1500 * time.Millisecond) // t0+5s: second's access expires
			want(t, second.AccessToken, 401)
			want(t, third.AccessToken, 200)
		}},
		{"refresh with another session's access token", func(t *testing.T) {
			other := login(t, s, "admin", "admin-password")
			a := req(t, s, "POST", "/api/user/refreshToken", `{"refreshToken":"`+third.RefreshToken+`","accessToken":"`+other.AccessToken+`"}`)
			if a.status != 401 {
				t.Errorf("got %d", a.status)
			}
		}},
		{"refresh without access token", func(t *testing.T) {
			a := req(t, s, "POST", "/api/user/refreshtoken", `{"refreshToken":"`+third.RefreshToken+`"}`)
			if a.status != 200 {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			third = decodeTokens(t, a)
		}},
		{"refresh token expires", func(t *testing.T) {
			clk.Advance(5 * time.Second)
			if a := refresh(t, s, third); a.status != 401 {
				t.Errorf("expired refresh token: %d", a.status)
			}
			want(t, third.AccessToken, 401)
		}},
		{"access token dies with its session", func(t *testing.T) {
			long := mdsstest.NewServer(mdsstest.Options{Now: clk.Now, AccessTTL: time.Hour, RefreshTTL: 5 * time.Second})
			defer long.Close()
			tk := login(t, long, "admin", "admin-password")
			clk.Advance(5 * time.Second)
			if got := scanList(t, long, tk.AccessToken); got != 401 {
				t.Errorf("access token after its refresh token expired: %d", got)
			}
		}},
		{"bad refresh bodies", func(t *testing.T) {
			for body, status := range map[string]int{`{}`: 400, `nope`: 400, `{"refreshToken":"unknown"}`: 401} {
				if a := req(t, s, "POST", "/api/user/refreshToken", body); a.status != status {
					t.Errorf("%s: %d, want %d", body, a.status, status)
				}
			}
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.do) {
			break
		}
	}
	if r := s.Refreshes(); r != 3 {
		t.Errorf("Refreshes %d, want 3", r)
	}
	if u := s.Unauthorized(); u < 6 {
		t.Errorf("Unauthorized %d", u)
	}
}

func TestLogout(t *testing.T) {
	s := mdsstest.NewServer(mdsstest.Options{})
	defer s.Close()
	tk := login(t, s, "admin", "admin-password")
	keep := login(t, s, "admin", "admin-password")
	if s.Sessions() != 2 {
		t.Fatalf("Sessions %d", s.Sessions())
	}
	if a := req(t, s, "POST", "/api/user/logout", "", "ApiKey: "+mdsstest.DefaultAPIKey); a.status != 401 {
		t.Errorf("logout with an API key: %d", a.status)
	}
	a := req(t, s, "POST", "/api/user/logout", "", "Authorization: Bearer "+tk.AccessToken)
	if a.status != 200 || len(a.body) != 0 {
		t.Fatalf("logout: %d %q", a.status, a.body)
	}
	if got := scanList(t, s, tk.AccessToken); got != 401 {
		t.Errorf("access token after logout: %d", got)
	}
	if a := refresh(t, s, tk); a.status != 401 {
		t.Errorf("refresh token after logout: %d", a.status)
	}
	if a := req(t, s, "POST", "/api/user/logout", "", "Authorization: Bearer "+tk.AccessToken); a.status != 401 {
		t.Errorf("second logout: %d", a.status)
	}
	if got := scanList(t, s, keep.AccessToken); got != 200 {
		t.Errorf("another session after logout: %d", got)
	}
	if s.Logouts() != 1 || s.Sessions() != 1 {
		t.Errorf("Logouts %d, Sessions %d", s.Logouts(), s.Sessions())
	}
}

func TestExpiryKnobs(t *testing.T) {
	s := mdsstest.NewServer(mdsstest.Options{})
	defer s.Close()

	tk := login(t, s, "admin", "admin-password")
	s.ExpireAccessTokens()
	if got := scanList(t, s, tk.AccessToken); got != 401 {
		t.Errorf("after ExpireAccessTokens: %d", got)
	}
	a := refresh(t, s, tk)
	if a.status != 200 {
		t.Fatalf("refresh after ExpireAccessTokens: %d", a.status)
	}
	tk = decodeTokens(t, a)
	if got := scanList(t, s, tk.AccessToken); got != 200 {
		t.Errorf("refreshed token: %d", got)
	}

	s.SetRejectRefresh(true)
	if a := refresh(t, s, tk); a.status != 401 {
		t.Errorf("refresh while rejected: %d", a.status)
	}
	if got := scanList(t, s, tk.AccessToken); got != 200 {
		t.Errorf("access token while refresh is rejected: %d", got)
	}
	s.SetRejectRefresh(false)

	s.ExpireTokens()
	if got := scanList(t, s, tk.AccessToken); got != 401 {
		t.Errorf("after ExpireTokens: %d", got)
	}
	if a := refresh(t, s, tk); a.status != 401 {
		t.Errorf("refresh after ExpireTokens: %d", a.status)
	}
	tk = login(t, s, "admin", "admin-password")
	if got := scanList(t, s, tk.AccessToken); got != 200 {
		t.Errorf("new login after ExpireTokens: %d", got)
	}
	if s.Authentications() != 2 || s.Refreshes() != 1 || s.Unauthorized() != 4 {
		t.Errorf("counters: auth %d, refresh %d, 401 %d", s.Authentications(), s.Refreshes(), s.Unauthorized())
	}
}
