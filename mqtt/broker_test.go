package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/bnnd/bnnd/internal/testutil"
)

// probe is a raw paho client of an attacker or a user; lost is closed when
// the broker drops its connection.
type probe struct {
	c    paho.Client
	lost chan struct{}
}

type probeOpts struct {
	user, password string
	will           string // will topic, if any
	tls            *tls.Config
}

func connectProbe(t *testing.T, url string, o probeOpts) (*probe, error) {
	t.Helper()
	p := &probe{lost: make(chan struct{})}
	var once sync.Once
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("probe-%d", time.Now().UnixNano())).
		SetUsername(o.user).SetPassword(o.password).SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second).
		SetConnectionLostHandler(func(paho.Client, error) { once.Do(func() { close(p.lost) }) })
	if o.will != "" {
		opts.SetWill(o.will, "PRESS", 1, false)
	}
	if o.tls != nil {
		opts.SetTLSConfig(o.tls)
	}
	p.c = paho.NewClient(opts)
	tok := p.c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { p.c.Disconnect(0) })
	return p, nil
}

// waitLost fails the test unless the broker drops the probe.
func (p *probe) waitLost(t *testing.T, why string) {
	t.Helper()
	select {
	case <-p.lost:
	case <-time.After(10 * time.Second):
		t.Fatalf("the broker kept the connection of a client that %s", why)
	}
}

// logBuffer collects a broker's log while the test runs.
type logBuffer struct{ testutil.Buffer }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestEmbeddedBrokerLogins: the embedded broker admits only its users; a
// read user and (when opted in) anonymous clients can watch but not
// command; nobody can slip a command in as a will.
func TestEmbeddedBrokerLogins(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, CredentialsFileName)
	viewerPW := filepath.Join(dir, "viewer.pw")
	if err := os.WriteFile(viewerPW, []byte("viewer-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("operator-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	url := "tcp://" + addr
	id := deviceID(t)
	base := "bnnd/" + id + "/"
	var mu sync.Mutex
	var handled []string
	handler := func(_ context.Context, cmd Command) (any, error) {
		mu.Lock()
		handled = append(handled, cmd.Name)
		mu.Unlock()
		return nil, nil
	}
	var logs logBuffer
	c, err := New(Config{DeviceID: id, EmbeddedAddr: addr, CommandsEnabled: true, EmbeddedBroker: BrokerOptions{
		CredentialsFile: creds,
		AnonymousRead:   true,
		Users: []BrokerUser{
			{Username: "viewer", PasswordFile: viewerPW},
			{Username: "operator", PasswordHash: string(hash), Access: AccessReadWrite},
		},
	}}, handler, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(creds)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file %s: %v (mode %v); want mode 0600", creds, err, st.Mode())
	}
	own, err := ReadCredentials(creds)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), creds) || strings.Contains(logs.String(), own.Password) {
		t.Errorf("the log should name %s and never hold the password:\n%s", creds, logs.String())
	}

	for _, bad := range []probeOpts{
		{user: own.Username, password: "guess"},
		{user: "operator", password: "guess"},
		{user: "nobody", password: "operator-secret"},
	} {
		if _, err := connectProbe(t, url, bad); err == nil {
			t.Errorf("connected as %q with password %q", bad.user, bad.password)
		}
	}
	// A will is published by the broker on the client's behalf: one under
	// cmd/ is a command the client could not send itself.
	if _, err := connectProbe(t, url, probeOpts{will: base + "cmd/pause"}); err == nil {
		t.Error("anonymous client connected with a will on cmd/pause")
	}
	if _, err := connectProbe(t, url, probeOpts{user: "viewer", password: "viewer-secret", will: base + "cmd/reset"}); err == nil {
		t.Error("read-only user connected with a will on cmd/reset")
	}

	// Anonymous readers get the telemetry under bnnd/# but not cmd/.
	anon := subscribe(t, url, nil, "bnnd/#")
	viewer := subscribeAs(t, url, nil, Credentials{"viewer", "viewer-secret"}, base+"#")
	operator := subscribeAs(t, url, nil, Credentials{"operator", "operator-secret"}, base+"cmd/result")
	anon.waitFor(base+"status", 5*time.Second, func(m recMsg) bool { return m.payload == statusOnline })

	for _, who := range []probeOpts{{}, {user: "viewer", password: "viewer-secret"}} {
		p, err := connectProbe(t, url, who)
		if err != nil {
			t.Fatalf("%q cannot connect: %v", who.user, err)
		}
		// MQTT 3.1.1 has no negative acknowledgement: the broker refuses
		// an unauthorised QoS 1 publish by closing the connection.
		p.c.Publish(base+"cmd/pause", 1, false, "PRESS")
		p.waitLost(t, "published a command without the right")
	}
	operator.publish(base+"cmd/resume", "PRESS", false)
	res := operator.waitFor(base+"cmd/result", 10*time.Second, nil)
	if !strings.Contains(res.payload, `"command":"resume","ok":true`) {
		t.Errorf("operator's resume answered %s", res.payload)
	}
	if err := c.Publish(TopicProgress, map[string]int{"step": 3}); err != nil {
		t.Fatal(err)
	}
	anon.waitFor(base+"progress", 10*time.Second, func(m recMsg) bool { return m.payload == `{"step":3}` })
	viewer.waitFor(base+"cmd/result", 10*time.Second, nil) // a read user sees results
	mu.Lock()
	if strings.Join(handled, ",") != "resume" {
		t.Errorf("handler ran %v; want only the operator's resume", handled)
	}
	mu.Unlock()
	// The daemon publishes the result before the progress on one
	// connection: had anonymous readers been allowed cmd/, it came first.
	for _, m := range anon.snapshot() {
		if strings.Contains(m.topic, "/cmd/") {
			t.Errorf("anonymous reader received %s", m.topic)
		}
	}
	if _, err := connectProbe(t, url, probeOpts{}); err != nil {
		t.Errorf("anonymous reading is on, yet: %v", err)
	}
}

func TestEmbeddedBrokerRefusesAnonymousByDefault(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	startClient(t, Config{DeviceID: deviceID(t), EmbeddedAddr: addr}, nil)
	_, err := connectProbe(t, "tcp://"+addr, probeOpts{})
	if err == nil || !strings.Contains(err.Error(), "not Authorized") && !strings.Contains(err.Error(), "bad user name or password") {
		t.Fatalf("anonymous connect to the default embedded broker: %v; want a refusal", err)
	}
}

// TestEmbeddedBrokerRetainedLimits: retained messages stop at the count
// and byte caps, a packet over the size cap closes its sender's
// connection, and the broker's accounting never exceeds the caps.
func TestEmbeddedBrokerRetainedLimits(t *testing.T) {
	const maxBytes = 64 << 10
	b, err := StartBroker(BrokerOptions{Addr: "127.0.0.1:0", allowAll: true,
		Limits: BrokerLimits{MaxPacketSize: 16 << 10, MaxRetainedMessages: 20, MaxRetainedBytes: maxBytes}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	p, err := connectProbe(t, b.URL(), probeOpts{})
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("r"), 8<<10)
	accepted := 0
	for i := 0; i < 40; i++ {
		tok := p.c.Publish(fmt.Sprintf("flood/%d", i), 1, true, payload)
		select {
		case <-tok.Done():
		case <-p.lost:
		}
		if tok.Error() != nil || !p.c.IsConnectionOpen() {
			break
		}
		accepted++
	}
	p.waitLost(t, "went over the retained bytes cap")
	count, total := b.limits.Retained()
	if want := maxBytes / (8<<10 + len("flood/00")); accepted > want || count != accepted || total > maxBytes {
		t.Errorf("accepted %d retained messages (%d held, %d bytes); want at most %d within %d bytes", accepted, count, total, want, maxBytes)
	}
	// Clearing retained messages frees room.
	q, err := connectProbe(t, b.URL(), probeOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < accepted; i++ {
		if tok := q.c.Publish(fmt.Sprintf("flood/%d", i), 1, true, ""); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("clear flood/%d: %v", i, tok.Error())
		}
	}
	if count, total := b.limits.Retained(); count != 0 || total != 0 {
		t.Errorf("after clearing: %d retained, %d bytes", count, total)
	}
	// The count cap, with small messages.
	for i := 0; i < 20; i++ {
		if tok := q.c.Publish(fmt.Sprintf("small/%d", i), 1, true, "x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("small/%d: %v", i, tok.Error())
		}
	}
	q.c.Publish("small/one-too-many", 1, true, "x")
	q.waitLost(t, "went over the retained count cap")

	// A packet over the size cap: the broker drops the sender.
	r, err := connectProbe(t, b.URL(), probeOpts{})
	if err != nil {
		t.Fatal(err)
	}
	r.c.Publish("big", 0, false, bytes.Repeat([]byte("b"), 32<<10))
	r.waitLost(t, "sent a packet over max_packet_size")
}

// TestEmbeddedBrokerLANNeedsTLS: a listener other than loopback needs a
// certificate or the explicit opt-in; with a certificate it serves TLS.
func TestEmbeddedBrokerLANNeedsTLS(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:1883", ":1883", "192.168.1.20:1883", "[::]:1883"} {
		err := Config{DeviceID: "d", EmbeddedAddr: addr}.Validate()
		if err == nil || !strings.Contains(err.Error(), "allow_insecure_lan") || !strings.Contains(err.Error(), "tls_cert_file") {
			t.Errorf("embedded broker on %s: %v; want a refusal naming allow_insecure_lan and tls_cert_file", addr, err)
		}
		if err := (Config{DeviceID: "d", EmbeddedAddr: addr, EmbeddedBroker: BrokerOptions{AllowInsecureLAN: true}}).Validate(); err != nil {
			t.Errorf("%s with allow_insecure_lan: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:1883", "localhost:1883", "[::1]:1883", "127.0.0.2:1"} {
		if err := (Config{DeviceID: "d", EmbeddedAddr: addr}).Validate(); err != nil {
			t.Errorf("loopback %s: %v", addr, err)
		}
	}

	pki := newTestPKI(t)
	creds := filepath.Join(t.TempDir(), CredentialsFileName)
	id := deviceID(t)
	// Listening on every interface is what needs TLS; the test only ever
	// talks to it over loopback.
	c := startClient(t, Config{DeviceID: id, EmbeddedAddr: "0.0.0.0:0",
		EmbeddedBroker: BrokerOptions{CredentialsFile: creds, TLSCertFile: pki.serverCert, TLSKeyFile: pki.serverKey}}, nil)
	if !strings.HasPrefix(c.BrokerURL(), "ssl://") {
		t.Fatalf("broker URL %s; want ssl://", c.BrokerURL())
	}
	_, port, err := net.SplitHostPort(c.embedd.Addr())
	if err != nil {
		t.Fatal(err)
	}
	own, err := ReadCredentials(creds)
	if err != nil {
		t.Fatal(err)
	}
	rec := subscribeAs(t, "ssl://127.0.0.1:"+port, &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}, own, "bnnd/"+id+"/status")
	rec.waitFor("bnnd/"+id+"/status", 5*time.Second, func(m recMsg) bool { return m.payload == statusOnline })
	if _, err := connectProbe(t, "tcp://127.0.0.1:"+port, probeOpts{user: own.Username, password: own.Password}); err == nil {
		t.Error("plain MQTT accepted on the TLS listener")
	}
}

// TestOversizedCommandIsNotRead: on a broker without a size limit a
// 32 MB message on cmd/ closes the connection at its header instead of
// being buffered whole; the client says why and reconnects.
func TestOversizedCommandIsNotRead(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	id := deviceID(t)
	var logs logBuffer
	c, err := New(Config{Broker: m.url(), DeviceID: id, CommandsEnabled: true, ReconnectMax: 200 * time.Millisecond},
		func(context.Context, Command) (any, error) { return nil, nil }, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	watchStats(t, c)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 32<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	// Another process publishes, so that this one allocates only what the
	// client under test reads.
	out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(m.port), "-q", "1",
		"-t", "bnnd/"+id+"/cmd/label", "-f", big).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub (Debian package mosquitto-clients): %v: %s", err, out)
	}
	st := waitStats(c, func(s Stats) bool { return s.ConnectionsLost >= 1 && s.Connected })
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if st.ConnectionsLost < 1 || !st.Connected {
		t.Fatalf("stats after a 32 MB command: %+v; want the connection dropped and made again", st)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("the client allocated %d MiB while a 32 MiB command arrived; it read the payload", grew>>20)
	}
	if !strings.Contains(logs.String(), "message_size_limit") || !strings.Contains(logs.String(), "bytes=33554") {
		t.Errorf("the log does not say what happened:\n%s", logs.String())
	}
}

// TestCostlyCommandsRateLimited floods checkpoint: the handler runs a burst,
// every other one is answered with a refusal saying when to retry.
func TestCostlyCommandsRateLimited(t *testing.T) {
	b := brokersUnderTest(t)[1](t)
	id := deviceID(t)
	base := "bnnd/" + id + "/"
	var mu sync.Mutex
	runs := 0
	handler := func(context.Context, Command) (any, error) { mu.Lock(); runs++; mu.Unlock(); return nil, nil }
	rec := subscribe(t, b.url, nil, base+"cmd/result")
	startClient(t, Config{Broker: b.url, DeviceID: id, CommandsEnabled: true, CostlyBurst: 2, CostlyInterval: time.Hour}, handler)
	const flood = 12 // within the command queue
	for i := 0; i < flood; i++ {
		rec.publish(base+"cmd/checkpoint", "PRESS", false)
	}
	rec.publish(base+"cmd/pause", "PRESS", false) // not costly: never limited
	rec.nth(base+"cmd/result", flood, 10*time.Second)
	ok, limited := 0, 0
	for _, m := range rec.snapshot() {
		var r Result
		if err := json.Unmarshal([]byte(m.payload), &r); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.OK:
			ok++
		case strings.Contains(r.Error, "checkpoint: rate limited: at most 2 in a row, then one every 1h0m0s; try again in"):
			limited++
		default:
			t.Errorf("unexpected result %s", m.payload)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if ok != 3 || limited != flood-2 || runs != 3 {
		t.Errorf("%d ok (handler ran %d times), %d rate-limited; want 3 (2 checkpoints and the pause) and %d", ok, runs, limited, flood-2)
	}
}

// TestEmptyCommandPayloadIgnored: clearing a stale retained pause (an
// empty retained message, which the broker passes on as an empty message)
// must not pause, nor be answered.
func TestEmptyCommandPayloadIgnored(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		id := deviceID(t)
		base := "bnnd/" + id + "/"
		var mu sync.Mutex
		var got []string
		handler := func(_ context.Context, cmd Command) (any, error) {
			mu.Lock()
			got = append(got, cmd.Name)
			mu.Unlock()
			return nil, nil
		}
		rec := subscribe(t, b.url, nil, base+"cmd/result", base+"cmd/pause")
		rec.publish(base+"cmd/pause", "PRESS", true) // stale and retained: ignored as before
		// A broker acknowledges before it passes a message on: once our own
		// copy is here, the client below can only get the retained one.
		rec.waitFor(base+"cmd/pause", 5*time.Second, func(m recMsg) bool { return m.payload == "PRESS" })
		startClient(t, Config{Broker: b.url, DeviceID: id, CommandsEnabled: true}, handler)
		// The answer to this comes after the broker has done the client's
		// subscription, retained messages included: publishing a retained
		// message meanwhile trips a data race inside mochi (v2.7.9 reads a
		// topic's retained path without its lock while scanning).
		rec.publish(base+"cmd/resume", "PRESS", false)
		rec.waitFor(base+"cmd/result", 10*time.Second, nil)
		rec.publish(base+"cmd/pause", "", true) // cleared
		rec.publish(base+"cmd/resume", "PRESS", false)
		m := rec.nth(base+"cmd/result", 1, 10*time.Second)
		mu.Lock()
		defer mu.Unlock()
		// One publisher, one subscriber: the broker keeps their order, so
		// an answer to the empty pause would have come before this one.
		if !strings.Contains(m.payload, `"command":"resume"`) || strings.Join(got, ",") != "resume,resume" {
			t.Errorf("second result %s, handler saw %v; want only the two resumes", m.payload, got)
		}
	})
}

// TestLongCommandNameTruncated: a 60 KB command name is echoed at most 64
// bytes long, in the result and in the log.
func TestLongCommandNameTruncated(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{})
	id := deviceID(t)
	base := "bnnd/" + id + "/"
	var logs logBuffer
	c, err := New(Config{Broker: m.url(), DeviceID: id, CommandsEnabled: true},
		func(context.Context, Command) (any, error) { return nil, nil }, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	rec := subscribe(t, m.url(), nil, base+"cmd/result")
	name := strings.Repeat("n", 60000)
	rec.publish(base+"cmd/"+name, "x", false)
	res := rec.waitFor(base+"cmd/result", 10*time.Second, nil)
	if len(res.payload) > 512 || !strings.Contains(res.payload, "unknown command") {
		t.Errorf("result of %d bytes: %s", len(res.payload), truncate(res.payload, 300))
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if len(line) > 1024 {
			t.Errorf("log line of %d bytes: %s", len(line), truncate(line, 200))
		}
	}
}

// TestBrokerPasswordNeverLogged: user info in the broker URL is hidden in
// every log line, error and stat.
func TestBrokerPasswordNeverLogged(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{passwords: map[string]string{"u": "s3cr3t-in-url"}})
	url := strings.Replace(m.url(), "tcp://", "tcp://u:s3cr3t-in-url@", 1)
	var logs logBuffer
	c, err := New(Config{Broker: url, DeviceID: deviceID(t)}, nil, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	watchStats(t, c)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	m.stop() // connection lost, reconnect errors
	waitStats(c, func(s Stats) bool { return s.LastError != "" && strings.Contains(s.LastError, "refused") })
	bad := Config{Broker: "ftp://u:s3cr3t-in-url@h", DeviceID: "d"}.Validate()
	all := logs.String() + c.Stats().LastError + c.BrokerURL() + fmt.Sprint(bad) + fmt.Sprint(c.Err())
	if strings.Contains(all, "s3cr3t-in-url") {
		t.Errorf("the password appears in logs or errors:\n%s", all)
	}
	if !strings.Contains(logs.String(), "u:xxxxx@127.0.0.1") {
		t.Errorf("the log does not name the broker (redacted):\n%s", logs.String())
	}
}

// TestOwnRetainedMessagesDespiteFullCaps: a user with write rights who
// fills the retained caps cannot keep the daemon from announcing itself.
func TestOwnRetainedMessagesDespiteFullCaps(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "op.pw")
	if err := os.WriteFile(pw, []byte("operator-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	id := deviceID(t)
	creds := filepath.Join(dir, CredentialsFileName)
	c := startClient(t, Config{DeviceID: id, EmbeddedAddr: addr, Discovery: true, Classes: []string{"sit", "walk"},
		EmbeddedBroker: BrokerOptions{
			CredentialsFile: creds,
			Users:           []BrokerUser{{Username: "operator", PasswordFile: pw, Access: AccessReadWrite}},
			Limits:          BrokerLimits{MaxRetainedMessages: 1000, MaxRetainedBytes: 64 << 10},
		}}, nil)
	if st := waitStats(c, func(s Stats) bool { return s.Discoveries >= 1 }); st.Discoveries < 1 {
		t.Fatalf("no discovery: %+v", st)
	}
	// Fill the bytes to the brim: big messages, then smaller ones, each
	// size until the broker refuses one (and drops the connection).
	n := 0
	for _, size := range []int{8 << 10, 512, 16, 1} {
		op, err := connectProbe(t, "tcp://"+addr, probeOpts{user: "operator", password: "operator-secret"})
		if err != nil {
			t.Fatal(err)
		}
		for ; ; n++ {
			tok := op.c.Publish(fmt.Sprintf("fill/%d", n), 1, true, bytes.Repeat([]byte("f"), size))
			select {
			case <-tok.Done():
			case <-op.lost:
			}
			if tok.Error() != nil || !op.c.IsConnectionOpen() {
				break
			}
		}
		op.waitLost(t, "went over the retained bytes cap")
	}
	if err := c.SetClasses([]string{"sit", "walk", "climbing-the-stairs"}); err != nil {
		t.Fatal(err)
	}
	// Once sent, the new discovery can only reach a new subscriber retained.
	if st := waitStats(c, func(s Stats) bool { return s.Discoveries >= 2 }); st.Discoveries < 2 {
		t.Fatalf("discovery not republished: %+v", st)
	}
	rec := subscribeAs(t, "tcp://"+addr, nil, Credentials{"operator", "operator-secret"}, discoveryTopic(DefaultDiscoveryPrefix, id))
	rec.waitFor(discoveryTopic(DefaultDiscoveryPrefix, id), 10*time.Second, func(m recMsg) bool {
		return m.retained && strings.Contains(m.payload, "climbing-the-stairs")
	})
	if st := c.Stats(); st.ConnectionsLost != 0 {
		t.Errorf("the daemon's client lost its connection %d times", st.ConnectionsLost)
	}
	// The daemon's login lifts the caps for its own two topics only.
	own, err := ReadCredentials(creds)
	if err != nil {
		t.Fatal(err)
	}
	p, err := connectProbe(t, "tcp://"+addr, probeOpts{user: own.Username, password: own.Password})
	if err != nil {
		t.Fatal(err)
	}
	p.c.Publish("fill/by-the-daemons-login", 1, true, bytes.Repeat([]byte("f"), 1<<10))
	p.waitLost(t, "retained past the caps with the daemon's login")
}
