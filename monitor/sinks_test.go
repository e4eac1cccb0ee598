package monitor_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink is a real HTTP server on loopback that records every request and
// answers with respond (default: 200 "ok").
type sink struct {
	*httptest.Server
	mu       sync.Mutex
	requests []sinkRequest
	respond  func(n int, r *http.Request) (status int, body string, header http.Header)
}

type sinkRequest struct {
	Path   string
	Header http.Header
	Body   []byte
}

func newSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, sinkRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		n := len(s.requests)
		respond := s.respond
		s.mu.Unlock()
		status, text, header := http.StatusOK, "ok", http.Header(nil)
		if respond != nil {
			status, text, header = respond(n, r)
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) setRespond(f func(n int, r *http.Request) (int, string, http.Header)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

func (s *sink) received() []sinkRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkRequest(nil), s.requests...)
}

// smtpServer is a small real SMTP server on loopback: EHLO, optional
// STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT. It records each message.
type smtpServer struct {
	ln       net.Listener
	tlsCfg   *tls.Config // nil: no STARTTLS offered
	user     string
	pass     string
	reply    string // reply to DATA's end; default "250 2.0.0 queued"
	mu       sync.Mutex
	messages []smtpMessage
	wg       sync.WaitGroup
}

type smtpMessage struct {
	From string
	To   []string
	Data string
	TLS  bool
	Auth string
}

func newSMTPServer(t *testing.T, withTLS bool, user, pass string) (*smtpServer, *x509.CertPool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, user: user, pass: pass}
	var pool *x509.CertPool
	if withTLS {
		cert, p := selfSigned(t)
		s.tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}}
		pool = p
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s, pool
}

func (s *smtpServer) addr() string { return s.ln.Addr().String() }

func (s *smtpServer) received() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.messages...)
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := bufio.NewReader(c), c
	say := func(line string) { _, _ = io.WriteString(w, line+"\r\n") }
	say("220 test ESMTP")
	var msg smtpMessage
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			exts := []string{"250-test"}
			if s.tlsCfg != nil && !msg.TLS {
				exts = append(exts, "250-STARTTLS")
			}
			if s.user != "" {
				exts = append(exts, "250-AUTH PLAIN")
			}
			exts = append(exts, "250 8BITMIME")
			say(strings.Join(exts, "\r\n"))
		case cmd == "STARTTLS":
			say("220 go ahead")
			tc := tls.Server(c, s.tlsCfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			c = tc
			r, w = bufio.NewReader(tc), tc
			msg.TLS = true
		case strings.HasPrefix(cmd, "AUTH PLAIN"):
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(line[len("AUTH PLAIN"):]))
			parts := strings.Split(string(raw), "\x00")
			if len(parts) == 3 && parts[1] == s.user && parts[2] == s.pass {
				msg.Auth = parts[1]
				say("235 ok")
			} else {
				say("535 bad credentials")
			}
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			msg.From = angle(line[len("MAIL FROM:"):])
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			msg.To = append(msg.To, angle(line[len("RCPT TO:"):]))
			say("250 ok")
		case cmd == "DATA":
			say("354 go on")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			msg.Data = data.String()
			s.mu.Lock()
			s.messages = append(s.messages, msg)
			reply := s.reply
			s.mu.Unlock()
			if reply == "" {
				reply = "250 2.0.0 queued"
			}
			say(reply)
		case cmd == "QUIT":
			say("221 bye")
			return
		case cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		default:
			say("502 unknown")
		}
	}
}

// angle returns the address between < and > (ignoring ESMTP parameters).
func angle(s string) string {
	start, end := strings.IndexByte(s, '<'), strings.IndexByte(s, '>')
	if start < 0 || end < start {
		return strings.TrimSpace(s)
	}
	return s[start+1 : end]
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
