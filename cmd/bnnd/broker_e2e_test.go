package main

// End-to-end tests of the daemon's MQTT defences, probed as an adversary
// on this machine would: the daemon process with its embedded broker, or
// against a mosquitto stopped and started again.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/bnnd/bnnd/internal/testutil"
	"github.com/bnnd/bnnd/mqtt"
)

// attacker is one MQTT connection; lost closes when the broker drops it.
type attacker struct {
	c    paho.Client
	lost chan struct{}
}

func dialAs(addr, user, password string) (*attacker, error) {
	a := &attacker{lost: make(chan struct{})}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(fmt.Sprintf("e2e-attacker-%d-%d", os.Getpid(), subscriberID.Add(1))).
		SetUsername(user).SetPassword(password).SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(30 * time.Second).
		SetConnectionLostHandler(func(paho.Client, error) { close(a.lost) })
	a.c = paho.NewClient(opts)
	tok := a.c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return a, nil
}

// publishOrDropped publishes with QoS 1 and reports whether the broker took
// the message (true) or dropped the connection instead (false).
func (a *attacker) publishOrDropped(t *testing.T, topic string, payload []byte) bool {
	t.Helper()
	tok := a.c.Publish(topic, 1, true, payload)
	select {
	case <-tok.Done():
		if tok.Error() == nil {
			return true
		}
	case <-a.lost:
	case <-time.After(30 * time.Second):
		t.Fatalf("publish %s: no acknowledgement and no disconnect within 30s", topic)
	}
	// paho fails the token before its connection-lost handler runs.
	select {
	case <-a.lost:
	case <-time.After(30 * time.Second):
		t.Fatalf("publish %s failed (%v) but the connection stayed", topic, tok.Error())
	}
	return false
}

func processRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// TestRunProcessEmbeddedBrokerDefences runs 'bnnd run' with its embedded
// broker's default limits (but max_inflight, raised so that one subscriber
// can count every retained message kept): it creates its login, logs where
// the login is (never the password), refuses anonymous clients, and a
// client with the login cannot grow the daemon by retaining messages:
// 200 retained 1 MB messages and 200 retained 16 KB ones leave its RSS
// where it was (before the limits: 22 → 443 MiB).
func TestRunProcessEmbeddedBrokerDefences(t *testing.T) {
	scale := timeScale()
	state := filepath.Join(t.TempDir(), "state")
	addr := testutil.FreeAddr(t)
	id := "e2e-embedded"
	base := "bnnd/" + id + "/"
	cfgPath := filepath.Join(t.TempDir(), "bnnd.yaml")
	text := fmt.Sprintf("source:\n  spec: synthetic-imu,pace=0\nmodel:\n  spec: mlp:32\ntraining:\n  momentum: e4m3b28s\n  threads: 1\n"+
		"replay:\n  budget: 128KiB\ncheckpoint:\n  dir: %s\nmqtt:\n  device_id: %s\n  intervals:\n    memory: 200ms\n"+
		"embedded_broker:\n  listen: %s\n  max_inflight: 256\n", state, id, addr)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startBnnd(t, childOptions{}, "run", "-config", cfgPath)

	// The broker listens once the login exists.
	p.waitLog(30*scale*time.Second, regexp.MustCompile(`embedded broker listening`))
	credsPath := filepath.Join(state, mqtt.CredentialsFileName)
	st, err := os.Stat(credsPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file %s: %v (mode %v), want mode 0600", credsPath, err, st.Mode())
	}
	own, err := mqtt.ReadCredentials(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	if log := p.stderr.String(); !strings.Contains(log, "file="+credsPath) || strings.Contains(log, own.Password) {
		t.Errorf("the log must name %s and not hold the password:\n%s", credsPath, log)
	}

	if a, err := dialAs(addr, "", ""); err == nil {
		a.c.Disconnect(0)
		t.Fatal("an anonymous client connected to the embedded broker")
	}
	if a, err := dialAs(addr, own.Username, "guess"); err == nil {
		a.c.Disconnect(0)
		t.Fatal("a wrong password was accepted")
	}

	w := subscribeAs(t, addr, own, base+"#")
	w.waitFor(p, base+"status", 0, 30*scale*time.Second, payloadIs("online"))
	w.waitFor(p, base+"memory", 0, 30*scale*time.Second, func(received) bool { return true })
	before := processRSS(t, p.cmd.Process.Pid)

	big := bytes.Repeat([]byte("M"), 1<<20)
	small := bytes.Repeat([]byte("k"), 16<<10)
	var a *attacker
	for round, payload := range [][]byte{big, small} {
		for i := 0; i < 200; i++ {
			if a == nil {
				if a, err = dialAs(addr, own.Username, own.Password); err != nil {
					t.Fatalf("round %d, message %d: %v", round, i, err)
				}
			}
			if !a.publishOrDropped(t, fmt.Sprintf("flood/%d/%d", round, i), payload) {
				a = nil
			}
		}
	}
	if a != nil {
		a.c.Disconnect(0)
	}
	p.alive()
	after := processRSS(t, p.cmd.Process.Pid)

	// What the broker kept: a new subscriber gets every retained message
	// before anything it publishes itself after subscribing (the broker
	// queues at most max_inflight messages for a client).
	held := subscribeAs(t, addr, own, "flood/end")
	kept := map[int]int{}
	keptBytes := 0
	var keptMu sync.Mutex
	if tok := held.client.Subscribe("flood/#", 0, func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			keptMu.Lock()
			kept[len(m.Payload())]++
			keptBytes += len(m.Topic()) + len(m.Payload())
			keptMu.Unlock()
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe flood/#: %v", tok.Error())
	}
	held.client.Publish("flood/end", 1, false, "end").Wait()
	held.waitFor(p, "flood/end", 0, 30*scale*time.Second, payloadIs("end"))
	keptMu.Lock()
	defer keptMu.Unlock()
	t.Logf("RSS %.1f MiB before, %.1f MiB after 200 retained 1 MiB and 200 retained 16 KiB messages; the broker kept %v (payload size: count), %d bytes",
		float64(before)/(1<<20), float64(after)/(1<<20), kept, keptBytes)
	if kept[len(big)] != 0 || keptBytes > 1<<20 {
		t.Errorf("retained messages kept: %v, %d bytes; want no 1 MiB one and at most 1 MiB in all", kept, keptBytes)
	}
	if grew := after - before; grew > 32<<20 {
		t.Errorf("RSS grew by %.1f MiB under the retained flood", float64(grew)/(1<<20))
	}
	// Still serving: telemetry goes on.
	n := w.count()
	w.waitFor(p, base+"progress", n, 30*scale*time.Second, func(received) bool { return true })

	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * scale * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestRunProcessReconnectsSoonAfterALongOutage: after a 16 s outage the
// daemon is back within 10 s of the broker's return. paho doubles its
// wait after every failed attempt (1, 2, 4, 8, 16 s): with the old 60 s
// ceiling the attempt after a 16 s outage came 31 s after the loss, 15 s
// after the broker was back; mqtt.reconnect_max (5 s) bounds the gap.
func TestRunProcessReconnectsSoonAfterALongOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 16 s outage")
	}
	scale := timeScale()
	broker := startMosquitto(t)
	cfg := e2eConfig{stateDir: filepath.Join(t.TempDir(), "state"), broker: broker.Addr, deviceID: "e2e-outage"}
	base := "bnnd/" + cfg.deviceID + "/"
	watcher := subscribe(t, broker.Addr, base+"status")
	p := startBnnd(t, childOptions{}, "run", "-config", cfg.write(t))
	watcher.waitFor(p, base+"status", 0, 30*scale*time.Second, payloadIs("online"))

	broker.Stop()
	watcher.close()
	lost := time.Now()
	p.waitLog(30*scale*time.Second, regexp.MustCompile(`mqtt: connection lost`))
	// The outage: the daemon keeps trying and backing off meanwhile.
	select {
	case <-p.exited:
		t.Fatalf("bnnd exited during the outage: %v", p.err)
	case <-time.After(time.Until(lost.Add(16 * time.Second))):
	}
	broker.Start()
	back := time.Now()
	after := subscribe(t, broker.Addr, base+"status")
	online, _ := after.waitFor(p, base+"status", 0, 60*scale*time.Second, payloadIs("online"))
	gap := online.at.Sub(back)
	t.Logf("online again %v after the broker's return (outage %v)", gap.Round(time.Millisecond), back.Sub(lost).Round(time.Millisecond))
	if gap > 10*scale*time.Second {
		t.Errorf("the daemon came back %v after the broker; want within 10s", gap.Round(time.Millisecond))
	}
	p.signal(syscall.SIGTERM)
	p.wait(30 * scale * time.Second)
}
