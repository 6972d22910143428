package mqtt

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
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/bnnd/bnnd/internal/testutil"
)

// mosquitto is a real mosquitto broker run by a test, reached over TCP or
// TLS (scheme).
type mosquitto struct {
	*testutil.Mosquitto
	port   int
	scheme string
}

type mosquittoOpts struct {
	passwords map[string]string // user → password; enables password_file
	tls       *testPKI          // enables a TLS listener
	mutualTLS bool              // require a client certificate
}

func startMosquitto(t testing.TB, o mosquittoOpts) *mosquitto {
	t.Helper()
	conf := "log_type all\n"
	if o.passwords != nil {
		pwFile := filepath.Join(t.TempDir(), "passwd")
		first := true
		for user, pw := range o.passwords {
			args := []string{"-b", pwFile, user, pw}
			if first {
				args = append([]string{"-c"}, args...)
				first = false
			}
			out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput()
			if err != nil {
				t.Fatalf("mosquitto_passwd (Debian package mosquitto): %v: %s", err, out)
			}
		}
		conf += fmt.Sprintf("allow_anonymous false\npassword_file %s\n", pwFile)
	} else {
		conf += "allow_anonymous true\n"
	}
	scheme := "tcp"
	if o.tls != nil {
		scheme = "ssl"
		conf += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\n", o.tls.caFile, o.tls.serverCert, o.tls.serverKey)
		if o.mutualTLS {
			conf += "require_certificate true\n"
		}
	}
	m := testutil.StartMosquitto(t, conf)
	return &mosquitto{Mosquitto: m, port: m.Port, scheme: scheme}
}

// stop ends the broker at once, as a crash or a lost network does.
func (m *mosquitto) stop()    { m.Kill() }
func (m *mosquitto) restart() { m.Start() }

func (m *mosquitto) addr() string { return m.Addr }
func (m *mosquitto) url() string  { return fmt.Sprintf("%s://%s", m.scheme, m.addr()) }

// testBroker is either a mosquitto or the embedded broker.
type testBroker struct {
	name    string
	url     string
	restart func()
	stop    func()
}

func brokersUnderTest(t *testing.T) []func(t *testing.T) testBroker {
	return []func(t *testing.T) testBroker{
		func(t *testing.T) testBroker {
			m := startMosquitto(t, mosquittoOpts{})
			return testBroker{name: "mosquitto", url: m.url(), restart: m.restart, stop: m.stop}
		},
		func(t *testing.T) testBroker {
			addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
			b, err := StartBroker(BrokerOptions{Addr: addr, allowAll: true}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			tb := testBroker{name: "embedded", url: b.URL()}
			var mu sync.Mutex
			tb.stop = func() {
				mu.Lock()
				defer mu.Unlock()
				if b != nil {
					_ = b.Close()
					b = nil
				}
			}
			tb.restart = func() {
				mu.Lock()
				defer mu.Unlock()
				// stop's Close has closed the listener: the port is free.
				var err error
				if b, err = StartBroker(BrokerOptions{Addr: addr, allowAll: true}, testLogger(t)); err != nil {
					t.Fatalf("restart embedded broker: %v", err)
				}
			}
			t.Cleanup(tb.stop)
			return tb
		},
	}
}

// forEachBroker runs a test against mosquitto and the embedded broker.
func forEachBroker(t *testing.T, test func(t *testing.T, b testBroker)) {
	for i, mk := range brokersUnderTest(t) {
		name := []string{"mosquitto", "embedded"}[i]
		t.Run(name, func(t *testing.T) { test(t, mk(t)) })
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// recorder is a paho subscriber that keeps every message it receives.
type recorder struct {
	t      testing.TB
	client paho.Client
	mu     sync.Mutex
	msgs   []recMsg
	notify chan struct{}
}

type recMsg struct {
	topic    string
	payload  string
	retained bool
}

func subscribe(t testing.TB, brokerURL string, tlsCfg *tls.Config, filters ...string) *recorder {
	t.Helper()
	return subscribeAs(t, brokerURL, tlsCfg, Credentials{}, filters...)
}

// subscribeAs is subscribe logged in as who.
func subscribeAs(t testing.TB, brokerURL string, tlsCfg *tls.Config, who Credentials, filters ...string) *recorder {
	t.Helper()
	r := &recorder{t: t, notify: make(chan struct{}, 1)}
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetUsername(who.Username).SetPassword(who.Password).
		SetClientID(fmt.Sprintf("rec-%d", time.Now().UnixNano())).
		SetProtocolVersion(4).SetAutoReconnect(true).SetOrderMatters(false).
		SetConnectTimeout(5 * time.Second).SetMaxReconnectInterval(200 * time.Millisecond)
	if tlsCfg != nil {
		opts.SetTLSConfig(tlsCfg)
	}
	r.client = paho.NewClient(opts)
	tok := r.client.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("test subscriber cannot connect to %s: %v", brokerURL, tok.Error())
	}
	// subscribe once, waiting for the broker's acknowledgement (a second
	// subscription would make the broker resend retained messages)
	for _, f := range filters {
		tok := r.client.Subscribe(f, 1, r.onMessage)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}
	t.Cleanup(func() { r.client.Disconnect(100) })
	return r
}

func (r *recorder) onMessage(_ paho.Client, m paho.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, recMsg{m.Topic(), string(m.Payload()), m.Retained()})
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) publish(topic, payload string, retained bool) {
	r.t.Helper()
	tok := r.client.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		r.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func (r *recorder) snapshot() []recMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recMsg(nil), r.msgs...)
}

// waitFor returns the first message (from index `from`) on topic that
// satisfies ok, or fails the test after within.
func (r *recorder) waitFor(topic string, within time.Duration, ok func(recMsg) bool) recMsg {
	r.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		for _, m := range r.snapshot() {
			if m.topic == topic && (ok == nil || ok(m)) {
				return m
			}
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			var got []string
			for _, m := range r.snapshot() {
				got = append(got, m.topic+"="+truncate(m.payload, 120))
			}
			r.t.Fatalf("no matching message on %s within %v; received: %v", topic, within, got)
		}
	}
}

func (r *recorder) count(topic string) int {
	n := 0
	for _, m := range r.snapshot() {
		if m.topic == topic {
			n++
		}
	}
	return n
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{pool: x509.NewCertPool()}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bnnd test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startClient creates and starts a Client and closes it at the end.
func startClient(t *testing.T, cfg Config, h CommandHandler) *Client {
	t.Helper()
	c := newClient(t, cfg, h)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func newClient(t *testing.T, cfg Config, h CommandHandler) *Client {
	t.Helper()
	c, err := New(cfg, h, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	watchStats(t, c)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// statsTicks holds, for each client given to watchStats, the channel its
// clock signals on.
var statsTicks sync.Map // *Client → chan struct{}

// watchStats lets waitStats follow c; call it before Start. The client
// reads its clock in the same critical section as it counts a message
// sent, a lost connection or an error, and again after every round of
// sends (discovery, state, results) in which its other counters change:
// so a clock that signals each reading tells waitStats when to look.
func watchStats(t testing.TB, c *Client) {
	tick := make(chan struct{}, 1)
	c.now = func() time.Time {
		select {
		case tick <- struct{}{}:
		default:
		}
		return time.Now()
	}
	statsTicks.Store(c, tick)
	t.Cleanup(func() { statsTicks.Delete(c) })
}

// waitStats waits until the client's counters satisfy ok (the subscriber
// can see a message before the publisher has counted it), for at most
// 10 s, and returns the last ones it read. c must come from newClient or
// have been given to watchStats.
func waitStats(c *Client, ok func(Stats) bool) Stats {
	v, watched := statsTicks.Load(c)
	if !watched {
		panic("waitStats: the client was not given to watchStats before Start")
	}
	tick := v.(chan struct{})
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		st := c.Stats()
		if ok(st) {
			return st
		}
		select {
		case <-tick:
		case <-deadline.C:
			return c.Stats()
		}
	}
}
