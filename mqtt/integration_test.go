package mqtt

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/bnnd/bnnd/internal/testutil"
)

const (
	helperBrokerEnv = "BNND_MQTT_TEST_HELPER_BROKER"
	helperDeviceEnv = "BNND_MQTT_TEST_HELPER_DEVICE"
)

func TestMain(m *testing.M) {
	if broker := os.Getenv(helperBrokerEnv); broker != "" {
		os.Exit(runHelperClient(broker, os.Getenv(helperDeviceEnv)))
	}
	os.Exit(m.Run())
}

// runHelperClient is the child process of TestWillOnKill: a client that
// connects, says so on stdout, and waits to be killed.
func runHelperClient(broker, device string) int {
	c, err := New(Config{Broker: broker, DeviceID: device, KeepAlive: 5 * time.Second}, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := c.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = c.Publish(TopicProgress, map[string]int{"step": 1})
	fmt.Println("connected")
	select {} // until SIGKILL
}

var testDeviceSeq struct {
	sync.Mutex
	n int
}

// deviceID is unique per test so parallel runs on one broker never mix.
func deviceID(t *testing.T) string {
	testDeviceSeq.Lock()
	defer testDeviceSeq.Unlock()
	testDeviceSeq.n++
	return fmt.Sprintf("dev%d-%d", os.Getpid(), testDeviceSeq.n)
}

func TestTelemetryAndStatus(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		id := deviceID(t)
		prefix := map[string]string{"embedded": "site/lab/bnnd"}[b.name] // and the default "bnnd"
		base := "bnnd/" + id + "/"
		if prefix != "" {
			base = prefix + "/" + id + "/"
		}
		rec := subscribe(t, b.url, nil, base+"#")
		c := startClient(t, Config{Broker: b.url, DeviceID: id, Prefix: prefix}, nil)
		if c.Topic(TopicProgress) != base+TopicProgress {
			t.Errorf("Topic(progress) = %q, want %q", c.Topic(TopicProgress), base+TopicProgress)
		}

		rec.waitFor(base+"status", 5*time.Second, func(m recMsg) bool { return m.payload == statusOnline })
		late := subscribe(t, b.url, nil, base+"status")
		if m := late.waitFor(base+"status", 5*time.Second, nil); !m.retained || m.payload != statusOnline {
			t.Errorf("late subscriber got status %+v, want retained online", m)
		}

		type progress struct {
			Step           int     `json:"step"`
			SamplesSeen    int     `json:"samples_seen"`
			SamplesTrained int     `json:"samples_trained"`
			PrequentialAcc float64 `json:"prequential_acc"`
			HoldoutAcc     float64 `json:"holdout_acc"`
			Loss           float64 `json:"loss"`
			SamplesPerS    float64 `json:"samples_per_s"`
			FlipsPerStep   float64 `json:"flips_per_step"`
		}
		values := map[string]any{
			TopicProgress:   progress{Step: 42, SamplesSeen: 1000, SamplesTrained: 900, PrequentialAcc: 0.91, HoldoutAcc: 0.9, Loss: 0.25, SamplesPerS: 312.5, FlipsPerStep: 17},
			TopicMemory:     map[string]any{"training_bytes": 123456, "rss_bytes": 9876543, "heap_bytes": 4000000, "layers": []any{map[string]any{"name": "dense1", "weights_bytes": 25088, "momenta_bytes": 200704}}},
			TopicEncoding:   map[string]any{"momentum_bits": 8, "lost_ratio": 0.012, "layers": []any{map[string]any{"format": "e4m3b28s", "lost": 0.01, "underflow": 0.001, "flips": 0.002}}},
			TopicPrediction: map[string]any{"class": 3, "name": "walk", "score": 0.87},
			TopicHealth:     json.RawMessage(`{"source":"ok","checkpoint_age_s":12,"broker":"connected"}`),
		}
		for _, topic := range TelemetryTopics {
			if err := c.Publish(topic, values[topic]); err != nil {
				t.Fatal(err)
			}
		}
		for _, topic := range TelemetryTopics {
			m := rec.waitFor(base+topic, 5*time.Second, nil)
			var got, want any
			if err := json.Unmarshal([]byte(m.payload), &got); err != nil {
				t.Fatalf("%s: payload %q is not JSON: %v", topic, m.payload, err)
			}
			wantJSON, _ := json.Marshal(values[topic])
			_ = json.Unmarshal(wantJSON, &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: got %s, want %s", topic, m.payload, wantJSON)
			}
			if m.retained {
				t.Errorf("%s: telemetry must not be retained", topic)
			}
		}
		if err := c.Publish("weights", 1); err == nil || !strings.Contains(err.Error(), `"weights"`) {
			t.Errorf("Publish(unknown topic) = %v, want an error naming it", err)
		}
		if err := c.Publish(TopicHealth, []byte("{not json")); err == nil {
			t.Error("Publish(invalid JSON bytes) succeeded")
		}
		if err := c.Publish(TopicHealth, func() {}); err == nil {
			t.Error("Publish(func) succeeded")
		}
		st := waitStats(c, func(s Stats) bool { return s.Sent == uint64(len(TelemetryTopics)) })
		if st.Sent != uint64(len(TelemetryTopics)) || st.Connects != 1 || !st.Connected {
			t.Errorf("stats %+v: want %d sent, 1 connect, connected", st, len(TelemetryTopics))
		}

		// The last value, still held back by the rate limit, goes out on Close.
		if err := c.Publish(TopicProgress, map[string]int{"step": 43}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		rec.waitFor(base+"status", 5*time.Second, func(m recMsg) bool { return m.payload == statusOffline })
		rec.waitFor(base+TopicProgress, 5*time.Second, func(m recMsg) bool { return m.payload == `{"step":43}` })
		after := subscribe(t, b.url, nil, base+"status")
		if m := after.waitFor(base+"status", 5*time.Second, nil); !m.retained || m.payload != statusOffline {
			t.Errorf("after Close, status %+v, want retained offline", m)
		}
	})
}

func TestRateLimitKeepsLatest(t *testing.T) {
	b := brokersUnderTest(t)[1](t) // embedded: rate limiting is the client's
	id := deviceID(t)
	topic := "bnnd/" + id + "/" + TopicProgress
	rec := subscribe(t, b.url, nil, topic)
	const interval = 200 * time.Millisecond
	c := startClient(t, Config{Broker: b.url, DeviceID: id, Rates: map[string]time.Duration{TopicProgress: interval}}, nil)

	// A new value every 5 ms, for about half a second: the publisher gets
	// values faster than the rate limit lets them out, over several
	// intervals.
	start := time.Now()
	const n = 100
	every := time.NewTicker(5 * time.Millisecond)
	defer every.Stop()
	for i := 1; i <= n; i++ {
		if err := c.Publish(TopicProgress, map[string]int{"step": i}); err != nil {
			t.Fatal(err)
		}
		<-every.C
	}
	elapsed := time.Since(start)
	rec.waitFor(topic, 5*time.Second, func(m recMsg) bool { return m.payload == fmt.Sprintf(`{"step":%d}`, n) })
	// the subscriber may see the last value before the publisher counts it
	st := waitStats(c, func(st Stats) bool { return st.PerTopicSent[TopicProgress]+st.PerTopicReplaced[TopicProgress] == n })
	got := rec.count(topic)
	// one at once, then at most one per interval over the publishing time,
	// plus the final value
	if limit := int(elapsed/interval) + 2; got > limit {
		t.Errorf("received %d messages in %v, rate limit %v allows at most %d", got, elapsed, interval, limit)
	}
	if st.PerTopicSent[TopicProgress]+st.PerTopicReplaced[TopicProgress] != n {
		t.Errorf("sent %d + replaced %d != published %d", st.PerTopicSent[TopicProgress], st.PerTopicReplaced[TopicProgress], n)
	}
	if st.PerTopicSent[TopicProgress] != uint64(got) {
		t.Errorf("stats say %d sent, subscriber got %d", st.PerTopicSent[TopicProgress], got)
	}
}

func TestWillOnKill(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		id := deviceID(t)
		status := "bnnd/" + id + "/status"
		rec := subscribe(t, b.url, nil, status)
		child := startHelperProcess(t, b.url, id)
		rec.waitFor(status, 10*time.Second, func(m recMsg) bool { return m.payload == statusOnline })
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		rec.waitFor(status, 10*time.Second, func(m recMsg) bool { return m.payload == statusOffline })
		late := subscribe(t, b.url, nil, status)
		if m := late.waitFor(status, 5*time.Second, nil); !m.retained || m.payload != statusOffline {
			t.Errorf("after kill -9, status %+v, want retained offline (the will)", m)
		}
	})
}

// startHelperProcess re-executes the test binary as a client (TestMain's
// helper mode) and waits until it reports being connected. Under qemu-user
// without binfmt_misc the binary is run through the emulator explicitly.
func startHelperProcess(t *testing.T, broker, device string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	start := func(name string, args ...string) (*exec.Cmd, io.Reader, error) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), helperBrokerEnv+"="+broker, helperDeviceEnv+"="+device)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		return cmd, out, cmd.Start()
	}
	cmd, out, err := start(self)
	if errors.Is(err, syscall.ENOEXEC) || (err != nil && strings.Contains(err.Error(), "exec format error")) {
		emu := map[string]string{"arm": "qemu-arm", "arm64": "qemu-aarch64"}[runtime.GOARCH]
		if emu == "" {
			t.Fatalf("cannot run %s: %v", self, err)
		}
		cmd, out, err = start(emu, self)
	}
	if err != nil {
		t.Fatalf("start helper client process: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		if l != "connected" {
			t.Fatalf("helper client said %q, want \"connected\"", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper client did not connect within 30s")
	}
	return cmd
}

func TestCommands(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		id := deviceID(t)
		base := "bnnd/" + id + "/"
		rec := subscribe(t, b.url, nil, base+"cmd/result")
		var mu sync.Mutex
		var got []Command
		handler := func(ctx context.Context, cmd Command) (any, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("handler context has no deadline")
			}
			mu.Lock()
			got = append(got, cmd)
			mu.Unlock()
			switch {
			case cmd.Name == CmdPause && cmd.Payload == "explode":
				panic("boom")
			case cmd.Name == CmdMomentum && cmd.Formats[0] == "e1m0s":
				return nil, errors.New("e1m0 cannot hold momenta")
			case cmd.Name == CmdCheckpoint:
				return map[string]string{"path": "/var/lib/bnnd/ckpt-7"}, nil
			}
			return nil, nil
		}
		classes := []string{"sit", "walk", "run"}
		c := startClient(t, Config{Broker: b.url, DeviceID: id, CommandsEnabled: true, Classes: classes, CostlyBurst: -1}, handler)
		_ = c

		cases := []struct {
			name, payload string
			ok            bool
			errHas        string
			check         func(Command) bool
		}{
			{CmdLabel, "walk", true, "", func(c Command) bool { return c.Label == 1 && c.LabelName == "walk" }},
			{CmdLabel, " 2\n", true, "", func(c Command) bool { return c.Label == 2 && c.LabelName == "run" }},
			{CmdLabel, "none", true, "", func(c Command) bool { return c.Label == NoLabel }},
			{CmdLabel, "fly", true, "", func(c Command) bool { return c.Label == NoLabel && c.LabelName == "fly" && c.LabelHold == 0 }},
			{CmdLabel, `{"label":"walk","for":"10s"}`, true, "", func(c Command) bool { return c.Label == 1 && c.LabelHold == 10*time.Second }},
			{CmdLabel, `{"label":"wave","for":2.5}`, true, "", func(c Command) bool { return c.LabelName == "wave" && c.LabelHold == 2500*time.Millisecond }},
			{CmdLabel, `{"label":"walk","for":"-1s"}`, false, "positive", nil},
			{CmdLabel, `{"label":"walk","for":"soon"}`, false, `"soon" is not a duration`, nil},
			{CmdLabel, `{"label":"none","for":"5s"}`, false, "holds none", nil},
			{CmdLabel, `{"lable":"walk"}`, false, `unknown field "lable"`, nil},
			{CmdLabel, `{"label":"walk"`, false, "JSON payload", nil},
			{CmdLabel, "7", false, "out of range", nil},
			{CmdLabel, " ", false, "empty label", nil},
			{CmdPause, "PRESS", true, "", nil},
			{CmdPause, "explode", false, "internal error", nil},
			{CmdResume, "PRESS", true, "", nil},
			{CmdCheckpoint, "PRESS", true, "", nil},
			{CmdReset, "somebody-else", false, `send "request"`, nil},
			{CmdReset, id, false, `send "request"`, nil}, // the device id no longer confirms
			{CmdMomentum, "e4m3b28s", true, "", func(c Command) bool { return reflect.DeepEqual(c.Formats, []string{"e4m3b28s"}) }},
			{CmdMomentum, "e4m3b28s, fp16,auto", true, "", func(c Command) bool { return len(c.Formats) == 3 && c.Formats[1] == "fp16" }},
			{CmdMomentum, "float8", false, `"float8"`, nil},
			{CmdMomentum, "e1m0", false, "outside the encoding search's range", nil},
			{CmdMomentum, "e5m0", false, "no mantissa bits", nil},
			{CmdMomentum, "e1m0s!", false, "cannot hold momenta", func(c Command) bool { return c.Forced && c.Formats[0] == "e1m0s" }},
			{CmdMomentum, "e4m3b28z", true, "", func(c Command) bool { return c.Formats[0] == "e4m3b28z" && !c.Forced }},
			{CmdMomentum, "fp16s,bf16z,fp32", true, "", func(c Command) bool { return reflect.DeepEqual(c.Formats, []string{"fp16s", "bf16z", "fp32"}) }},
			{"selfdestruct", "now", false, `unknown command "selfdestruct"`, nil},
			{CmdLabel, strings.Repeat("x", DefaultMaxPayload+1), false, "exceeds the limit", nil},
			{CmdLabel, "\xff\xfe", false, "UTF-8", nil},
		}
		for i, tc := range cases {
			mu.Lock()
			handled := len(got)
			mu.Unlock()
			rec.publish(base+"cmd/"+tc.name, tc.payload, false)
			m := rec.nth(base+"cmd/result", i, 10*time.Second)
			var res struct {
				Command string          `json:"command"`
				OK      bool            `json:"ok"`
				Error   string          `json:"error"`
				Result  json.RawMessage `json:"result"`
				Time    time.Time       `json:"time"`
			}
			if err := json.Unmarshal([]byte(m.payload), &res); err != nil {
				t.Fatalf("case %d: result %q: %v", i, m.payload, err)
			}
			if res.Command != truncate(tc.name, 64) || res.OK != tc.ok || !strings.Contains(res.Error, tc.errHas) || res.Time.IsZero() {
				t.Errorf("case %d %s %q: result %s; want ok=%v error containing %q", i, tc.name, truncate(tc.payload, 20), m.payload, tc.ok, tc.errHas)
			}
			if tc.name == CmdCheckpoint && string(res.Result) != `{"path":"/var/lib/bnnd/ckpt-7"}` {
				t.Errorf("checkpoint result %s", res.Result)
			}
			if tc.check != nil {
				mu.Lock()
				if len(got) != handled+1 || !tc.check(got[len(got)-1]) {
					t.Errorf("case %d: handler saw %+v", i, got[handled:])
				}
				mu.Unlock()
			}
		}
		st := c.Stats()
		if st.Commands != uint64(len(cases)) {
			t.Errorf("stats count %d commands, sent %d", st.Commands, len(cases))
		}
	})
}

// nth waits for the i-th (from 0) message on topic.
func (r *recorder) nth(topic string, i int, within time.Duration) recMsg {
	r.t.Helper()
	seen := 0
	var found recMsg
	r.waitFor(topic, within, func(m recMsg) bool {
		seen = 0
		for _, x := range r.snapshot() {
			if x.topic == topic {
				if seen == i {
					found = x
					return true
				}
				seen++
			}
		}
		return false
	})
	return found
}

func TestReconnectPublishesLatest(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		id := deviceID(t)
		base := "bnnd/" + id + "/"
		rec := subscribe(t, b.url, nil, base+"#")
		c := newClient(t, Config{Broker: b.url, DeviceID: id, ReconnectMax: 300 * time.Millisecond,
			Rates: map[string]time.Duration{TopicProgress: 50 * time.Millisecond}}, nil)
		gate := make(chan struct{})
		var gateOnce sync.Once
		openGate := func() { gateOnce.Do(func() { close(gate) }) }
		t.Cleanup(openGate)
		// Hold reconnection until the test's subscriber is back, so it
		// cannot miss the burst sent right after reconnecting.
		c.hookBeforeReconnect = func() {
			select {
			case <-gate:
			case <-time.After(20 * time.Second):
			}
		}
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		_ = c.Publish(TopicMemory, map[string]int{"training_bytes": 1})
		_ = c.Publish(TopicProgress, map[string]int{"step": 0})
		rec.waitFor(base+TopicProgress, 5*time.Second, nil)
		rec.waitFor(base+TopicMemory, 5*time.Second, nil)

		b.stop()
		if st := waitStats(c, func(s Stats) bool { return !s.Connected }); st.Connected {
			t.Fatal("client did not notice the broker going away")
		}
		// training goes on: Publish never waits for the broker
		const n = 50
		for i := 1; i <= n; i++ {
			t0 := time.Now()
			if err := c.Publish(TopicProgress, map[string]int{"step": i}); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(t0); d > 100*time.Millisecond {
				t.Errorf("Publish while disconnected took %v", d)
			}
		}
		before := c.Stats()
		b.restart()
		rec2 := subscribe(t, b.url, nil, base+"#")
		openGate()
		rec2.waitFor(base+"status", 15*time.Second, func(m recMsg) bool { return m.payload == statusOnline })
		rec2.waitFor(base+TopicProgress, 5*time.Second, func(m recMsg) bool { return m.payload == fmt.Sprintf(`{"step":%d}`, n) })
		rec2.waitFor(base+TopicMemory, 5*time.Second, func(m recMsg) bool { return m.payload == `{"training_bytes":1}` })
		if k := rec2.count(base + TopicProgress); k != 1 {
			t.Errorf("after reconnect %d progress messages, want only the latest", k)
		}
		after := waitStats(c, func(s Stats) bool { return s.Sent >= before.Sent+2 })
		if after.Reconnects != 1 || after.ConnectionsLost != 1 {
			t.Errorf("reconnects %d, connections lost %d; want 1 and 1", after.Reconnects, after.ConnectionsLost)
		}
		if before.PerTopicReplaced[TopicProgress] != n-1 {
			t.Errorf("while disconnected %d progress values replaced, want %d", before.PerTopicReplaced[TopicProgress], n-1)
		}
		if after.Republished < 2 || after.Sent != before.Sent+2 {
			t.Errorf("after reconnect: republished %d, sent %d→%d; want 2 more (progress, memory)", after.Republished, before.Sent, after.Sent)
		}
	})
}

func TestEmbeddedBrokerDefault(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	id := deviceID(t)
	creds := filepath.Join(t.TempDir(), CredentialsFileName)
	c := startClient(t, Config{DeviceID: id, EmbeddedAddr: addr, EmbeddedBroker: BrokerOptions{CredentialsFile: creds}}, nil)
	if c.BrokerURL() != "tcp://"+addr {
		t.Errorf("BrokerURL %q, want tcp://%s", c.BrokerURL(), addr)
	}
	own, err := ReadCredentials(creds)
	if err != nil {
		t.Fatal(err)
	}
	rec := subscribeAs(t, "tcp://"+addr, nil, own, "bnnd/"+id+"/status")
	rec.waitFor("bnnd/"+id+"/status", 5*time.Second, func(m recMsg) bool { return m.payload == statusOnline })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Close stops the embedded broker: once it returns, the port is free.
	l, err := netListen(addr)
	if err != nil {
		t.Fatalf("embedded broker still holds %s after Close: %v", addr, err)
	}
	l.Close()
}

func TestEmbeddedBrokerBusyPort(t *testing.T) {
	l, err := netListen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	_, err = StartBroker(BrokerOptions{Addr: addr}, nil)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "already in use") || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("StartBroker on a busy port: %v; want an error naming %s and 'already in use'", err, addr)
	}
	c := newClient(t, Config{DeviceID: deviceID(t), EmbeddedAddr: addr}, nil)
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Client.Start with a busy embedded address: %v", err)
	}
}

// Closing the embedded broker while its clients disconnect must not hang
// (mochi's own client shutdown can deadlock on its clients lock then).
func TestEmbeddedBrokerCloseWhileClientsDisconnect(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for round := 0; round < rounds; round++ {
		b, err := StartBroker(BrokerOptions{Addr: "127.0.0.1:0", allowAll: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var clients []paho.Client
		for i := 0; i < 8; i++ {
			opts := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(fmt.Sprintf("close-%d-%d", round, i)).SetAutoReconnect(false)
			c := paho.NewClient(opts)
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("round %d: connect client %d: %v", round, i, tok.Error())
			}
			clients = append(clients, c)
		}
		for _, c := range clients {
			go c.Disconnect(0)
		}
		closed := make(chan error, 1)
		go func() { closed <- b.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: broker Close did not return while clients disconnected", round)
		}
	}
}
