package mdsstest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// session is one login: its current refresh token and whether it ended.
// Every access token it issued dies with it (vendor: "The refresh token is
// used to forcibly expire any previously issued JWT when the refresh token
// expires or is removed by calling /api/user/logout").
type session struct {
	user       string
	refresh    string
	refreshExp time.Time
	ended      bool
}

type accessToken struct {
	sess *session
	exp  time.Time
}

// tokenPair is the answer of authenticate and refreshToken.
type tokenPair struct {
	AccessToken            string `json:"accessToken"`
	RefreshToken           string `json:"refreshToken"`
	AccessTokenExpiryTime  string `json:"accessTokenExpiryTime"`
	RefreshTokenExpiryTime string `json:"refreshTokenExpiryTime"`
}

// jwtKey signs the fake's access tokens. Nothing checks the signature: the
// server looks tokens up; the JWT shape is there for a client that reads
// "exp" from the token.
var jwtKey = []byte("mdsstest: not a secret")

// newTokensLocked issues an access token and a new refresh token for sess.
// s.mu is held.
func (s *Server) newTokensLocked(sess *session, now time.Time) tokenPair {
	s.tokN++
	if s.tokN%256 == 0 {
		s.pruneLocked(now)
	}
	aexp := now.Add(s.accessTTL).Truncate(time.Millisecond)
	hdr := b64(`{"alg":"HS256","typ":"JWT"}`)
	claims := b64(string(mustJSON(map[string]any{
		"sub": sess.user, "jti": fmt.Sprintf("%d-%d", s.seed, s.tokN),
		"iat": now.Unix(), "exp": aexp.Unix(), "iss": "mdsstest",
	})))
	mac := hmac.New(sha256.New, jwtKey)
	mac.Write([]byte(hdr + "." + claims))
	at := hdr + "." + claims + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	s.access[at] = &accessToken{sess: sess, exp: aexp}

	var rb [48]byte
	binary.LittleEndian.PutUint64(rb[:8], s.tokN)
	for i := 8; i < len(rb); i += 8 {
		binary.LittleEndian.PutUint64(rb[i:], s.frng.Uint64())
	}
	rt := base64.StdEncoding.EncodeToString(rb[:])
	if sess.refresh != "" {
		delete(s.refresh, sess.refresh)
	}
	sess.refresh = rt
	sess.refreshExp = now.Add(s.refreshTTL).Truncate(time.Millisecond)
	s.refresh[rt] = sess
	return tokenPair{at, rt, formatMillis(aexp), formatMillis(sess.refreshExp)}
}

// pruneLocked forgets the access tokens of dead sessions. s.mu is held.
func (s *Server) pruneLocked(now time.Time) {
	for tok, a := range s.access {
		if a.sess.ended || !now.Before(a.sess.refreshExp) {
			delete(s.access, tok)
		}
	}
	for tok, sess := range s.refresh {
		if sess.ended || !now.Before(sess.refreshExp) {
			delete(s.refresh, tok)
		}
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// validAccessLocked reports whether tok is a live access token. s.mu is
// held.
func (s *Server) validAccessLocked(tok string, now time.Time) (*accessToken, bool) {
	a := s.access[tok]
	if a == nil || a.sess.ended || !now.Before(a.exp) || !now.Before(a.sess.refreshExp) {
		return a, false
	}
	return a, true
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}

// authenticate checks a request's credentials: a live bearer token or the
// API key. It returns how the request authenticated, "" when it did not.
func (s *Server) authenticate(r *http.Request) string {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := bearer(r); ok {
		if _, live := s.validAccessLocked(tok, now); live {
			return "bearer"
		}
	}
	if k := r.Header.Get("ApiKey"); k != "" && s.apiKey != "" && k == s.apiKey {
		return "apikey"
	}
	return ""
}

// handleAuthenticate answers POST /api/user/authenticate.
func (s *Server) handleAuthenticate(body []byte) (int, []byte) {
	var req struct {
		UserName string `json:"userName"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return badRequest("The request body is not valid JSON: " + err.Error())
	}
	if req.UserName == "" || req.Password == "" {
		return badRequest("userName and password are required")
	}
	now := s.now()
	s.mu.Lock()
	pw, ok := s.users[strings.ToLower(req.UserName)]
	if !ok || pw != req.Password {
		s.mu.Unlock()
		return s.unauthorized()
	}
	tp := s.newTokensLocked(&session{user: req.UserName}, now)
	s.mu.Unlock()
	s.nAuth.Add(1)
	return http.StatusOK, mustJSON(tp)
}

// handleRefresh answers POST /api/user/refreshToken: a live refresh token
// (and, when the body names one, an access token of the same session,
// expired or not) gets a new pair; the old refresh token stops working,
// the old access token lives on to its own expiry.
func (s *Server) handleRefresh(body []byte) (int, []byte) {
	var req struct {
		RefreshToken string `json:"refreshToken"`
		AccessToken  string `json:"accessToken"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return badRequest("The request body is not valid JSON: " + err.Error())
	}
	if req.RefreshToken == "" {
		return badRequest("refreshToken is required")
	}
	now := s.now()
	s.mu.Lock()
	sess := s.refresh[req.RefreshToken]
	ok := !s.rejectRefresh && sess != nil && !sess.ended && now.Before(sess.refreshExp)
	if ok && req.AccessToken != "" {
		a := s.access[req.AccessToken]
		ok = a != nil && a.sess == sess
	}
	if !ok {
		s.mu.Unlock()
		return s.unauthorized()
	}
	tp := s.newTokensLocked(sess, now)
	s.mu.Unlock()
	s.nRefresh.Add(1)
	return http.StatusOK, mustJSON(tp)
}

// handleLogout answers POST /api/user/logout: the bearer token's session
// ends. An API key cannot log out (there is no session): 401.
func (s *Server) handleLogout(r *http.Request) (int, []byte) {
	now := s.now()
	tok, _ := bearer(r)
	s.mu.Lock()
	a, live := s.validAccessLocked(tok, now)
	if !live {
		s.mu.Unlock()
		return s.unauthorized()
	}
	a.sess.ended = true
	delete(s.refresh, a.sess.refresh)
	s.mu.Unlock()
	s.nLogout.Add(1)
	return http.StatusOK, nil
}

func (s *Server) unauthorized() (int, []byte) {
	s.nUnauth.Add(1)
	return http.StatusUnauthorized, []byte(UnauthorizedBody)
}

// Authentications returns how many logins succeeded.
func (s *Server) Authentications() int64 { return s.nAuth.Load() }

// Refreshes returns how many token refreshes succeeded.
func (s *Server) Refreshes() int64 { return s.nRefresh.Load() }

// Logouts returns how many logouts succeeded.
func (s *Server) Logouts() int64 { return s.nLogout.Load() }

// Unauthorized returns how many 401s were answered, for any reason (bad
// token or key, wrong password, refused refresh).
func (s *Server) Unauthorized() int64 { return s.nUnauth.Load() }

// ExpireTokens ends every session now: all access and refresh tokens issued
// so far get 401, so a client must authenticate again.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	for _, sess := range s.refresh {
		sess.ended = true
	}
	for _, a := range s.access {
		a.sess.ended = true
	}
	clear(s.refresh)
	s.mu.Unlock()
}

// ExpireAccessTokens makes every access token issued so far expired, as if
// its time had come; refresh tokens keep working, so a client must refresh.
func (s *Server) ExpireAccessTokens() {
	now := s.now()
	s.mu.Lock()
	for _, a := range s.access {
		if a.exp.After(now) {
			a.exp = now
		}
	}
	s.mu.Unlock()
}

// SetRejectRefresh makes refreshToken answer 401 (true) or work again
// (false), so that a client's fallback to authenticate is exercised.
func (s *Server) SetRejectRefresh(reject bool) {
	s.mu.Lock()
	s.rejectRefresh = reject
	s.mu.Unlock()
}

// SetAPIKey makes key the only accepted API key ("" for none), as a new key
// or a password change does in MDSS.
func (s *Server) SetAPIKey(key string) {
	s.mu.Lock()
	s.apiKey = key
	s.mu.Unlock()
}

// Sessions returns how many sessions are live now (not logged out, not
// expired).
func (s *Server) Sessions() int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sess := range s.refresh {
		if !sess.ended && now.Before(sess.refreshExp) {
			n++
		}
	}
	return n
}
