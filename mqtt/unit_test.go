package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestConfigValidate(t *testing.T) {
	good := Config{DeviceID: "pi-1"}
	if err := good.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.DeviceID = "" }, "device_id"},
		{func(c *Config) { c.DeviceID = "a/b" }, "device_id"},
		{func(c *Config) { c.DeviceID = "a+b" }, "device_id"},
		{func(c *Config) { c.Broker = "http://x:1" }, `scheme "http"`},
		{func(c *Config) { c.Broker = "tcp://" }, "missing host"},
		{func(c *Config) { c.Broker = "tcp://h:1"; c.CAFile = "ca.pem" }, "TLS settings"},
		{func(c *Config) { c.Broker = "ssl://h"; c.CertFile = "c.pem" }, "cert_file and key_file"},
		{func(c *Config) { c.Username = "u"; c.Password = "p"; c.PasswordEnv = "X" }, "only one of password"},
		{func(c *Config) { c.Password = "p" }, "username is empty"},
		{func(c *Config) { c.Prefix = "a/#" }, "prefix"},
		{func(c *Config) { c.Prefix = "/a" }, "prefix"},
		{func(c *Config) { c.DiscoveryPrefix = "ha/" }, "discovery_prefix"},
		{func(c *Config) { c.KeepAlive = time.Millisecond }, "keep_alive"},
		{func(c *Config) { c.MaxPayload = 1 << 30 }, "max_payload"},
		{func(c *Config) { c.DisabledCommands = []string{"fly"} }, `unknown command "fly"`},
		{func(c *Config) { c.Rates = map[string]time.Duration{"weights": time.Second} }, `unknown topic "weights"`},
		{func(c *Config) { c.Rates = map[string]time.Duration{TopicProgress: -time.Second} }, "rates.progress"},
		{func(c *Config) { c.Classes = []string{"a", "a"} }, "duplicates"},
		{func(c *Config) { c.Classes = []string{"none"} }, "reserved"},
		{func(c *Config) { c.Classes = []string{" a"} }, "classes[0]"},
		{func(c *Config) { c.EmbeddedAddr = "1883" }, "embedded_addr"},
	} {
		cfg := good
		tc.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v; want an error containing %q", cfg, err, tc.want)
		}
		if _, nerr := New(cfg, nil, nil); nerr == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
	for _, url := range []string{"tcp://h:1", "mqtt://h", "ssl://h:8883", "mqtts://h", "tls://h", "ws://h:9001/mqtt", "wss://h/mqtt", "embedded", ""} {
		cfg := good
		cfg.Broker = url
		if err := cfg.Validate(); err != nil {
			t.Errorf("broker %q: %v", url, err)
		}
	}
	if _, err := New(Config{DeviceID: "d", CommandsEnabled: true}, nil, nil); err == nil {
		t.Error("New accepted commands without a handler")
	}
}

func TestBrokerURLDefaultPorts(t *testing.T) {
	for in, want := range map[string]string{"tcp://h": "tcp://h:1883", "mqtts://h": "mqtts://h:8883", "ws://h/mqtt": "ws://h:80/mqtt", "tcp://h:7": "tcp://h:7"} {
		u, err := Config{Broker: in}.brokerURL()
		if err != nil || u.String() != want {
			t.Errorf("brokerURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
}

func TestMailbox(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := &mailbox{interval: time.Second}
	if m.due(t0) {
		t.Fatal("empty mailbox is due")
	}
	a, b := []byte(`1`), []byte(`2`)
	if m.put(a) {
		t.Error("first put reported a replacement")
	}
	if !m.due(t0) {
		t.Fatal("first value not due at once")
	}
	if got := m.take(); string(got) != "1" {
		t.Fatalf("took %q, want 1", got)
	}
	m.markSent(t0)
	if m.due(t0) || m.pending {
		t.Fatal("sent value still pending")
	}
	m.put(b)
	if m.due(t0.Add(999 * time.Millisecond)) {
		t.Error("rate limit not applied")
	}
	if !m.due(t0.Add(time.Second)) {
		t.Error("value not due after the interval")
	}
	if !m.put(a) {
		t.Error("replacing an unsent value not reported")
	}
	inFlight := m.take()
	if m.put(b) {
		t.Error("a value put while the previous one is in flight counted as a replacement")
	}
	m.sendFailed(inFlight) // a newer value arrived during the failed send
	if !m.pending || string(m.payload) != "2" {
		t.Error("newer value lost when an older send failed")
	}
	failed := m.take()
	m.sendFailed(failed)
	if !m.pending || string(m.payload) != "2" {
		t.Error("failed send not given back")
	}
	m.take()
	m.markSent(t0.Add(2 * time.Second))
	m.resend()
	if !m.due(t0.Add(2*time.Second)) || string(m.payload) != "2" {
		t.Error("resend did not make the latest value due at once")
	}
	var empty mailbox
	empty.resend()
	if empty.pending {
		t.Error("resend of an empty mailbox made it pending")
	}
}

func TestResultQueueBounded(t *testing.T) {
	q := resultQueue{limit: 3}
	for i := 0; i < 5; i++ {
		dropped := q.push([]byte{byte('0' + i)})
		if dropped != (i >= 3) {
			t.Errorf("push %d: dropped=%v", i, dropped)
		}
	}
	b, _ := q.pop()
	if string(b) != "2" {
		t.Errorf("oldest kept is %q, want 2", b)
	}
	q.unpop(b)
	var got string
	for {
		b, ok := q.pop()
		if !ok {
			break
		}
		got += string(b)
	}
	if got != "234" {
		t.Errorf("queue order %q, want 234", got)
	}
}

func testPolicy() *commandPolicy {
	return &commandPolicy{maxPayload: 256, disabled: map[string]bool{CmdReset: true},
		classes: func() []string { return []string{"sit", "walk"} }, burst: -1}
}

func TestExecuteDisabledAndHandlerErrors(t *testing.T) {
	p := testPolicy()
	ok := func(context.Context, Command) (any, error) { return "done", nil }
	now := func() time.Time { return time.Unix(5, 0) }
	if r := p.execute(context.Background(), ok, time.Second, CmdReset, []byte("pi-1"), now); r.OK || !strings.Contains(r.Error, "disabled") {
		t.Errorf("disabled command: %+v", r)
	}
	if r := p.execute(context.Background(), nil, time.Second, CmdPause, nil, now); r.OK || !strings.Contains(r.Error, "no command handler") {
		t.Errorf("nil handler: %+v", r)
	}
	bad := func(context.Context, Command) (any, error) { return func() {}, nil }
	if r := p.execute(context.Background(), bad, time.Second, CmdPause, nil, now); r.OK || !strings.Contains(r.Error, "JSON") {
		t.Errorf("unencodable result: %+v", r)
	}
	failing := func(context.Context, Command) (any, error) { return nil, errors.New("disk full") }
	if r := p.execute(context.Background(), failing, time.Second, CmdCheckpoint, nil, now); r.OK || r.Error != "checkpoint: disk full" {
		t.Errorf("handler error: %+v", r)
	}
	if r := p.execute(context.Background(), ok, time.Second, CmdLabel, []byte("walk"), now); !r.OK || r.Result != "done" || !r.Time.Equal(now()) {
		t.Errorf("good command: %+v", r)
	}
}

// FuzzCommandPayload feeds arbitrary names and payloads through the whole
// command path (validation, handler, result encoding): no panic, always a
// well-formed result, and the handler only sees validated commands.
func FuzzCommandPayload(f *testing.F) {
	for _, name := range append(CommandNames, "result", "", "x/y") {
		for _, payload := range []string{"", "walk", "1", "-1", "none", "pi-1", "e4m3b28s", "e4m3b28s,fp16", "e99m99b-9999s", "e1m0!", "request", "token-0123456789abcdef", "\xff", strings.Repeat(",", 70), "{\"label\":1}", "9999999999999999999999"} {
			f.Add(name, []byte(payload))
		}
	}
	p := testPolicy()
	p.disabled = nil
	p.resetToken = "token-0123456789abcdef"
	var code string // the reset code valid before the command
	handler := func(_ context.Context, cmd Command) (any, error) {
		if !isCommand(cmd.Name) || !utf8.ValidString(cmd.Payload) || len(cmd.Payload) > p.maxPayload {
			panic("handler got an unvalidated command")
		}
		switch cmd.Name {
		case CmdLabel:
			if cmd.Label < NoLabel || cmd.Label >= 2 {
				panic("label out of range reached the handler")
			}
		case CmdReset:
			if cmd.Payload != p.resetToken && (code == "" || cmd.Payload != code) {
				panic("reset without confirmation reached the handler")
			}
		case CmdMomentum:
			if len(cmd.Formats) == 0 || len(cmd.Formats) > maxFormats {
				panic("bad momentum format list reached the handler")
			}
		}
		return cmd, nil
	}
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		code = p.resetCode
		r := p.execute(context.Background(), handler, time.Second, name, payload, time.Now)
		if strings.Contains(r.Error, "internal error") {
			t.Fatalf("validation let through a bad command: %s", r.Error)
		}
		if r.OK == (r.Error != "") {
			t.Fatalf("inconsistent result %+v", r)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("result not encodable: %v", err)
		}
	})
}

// TestResetConfirmation: only a fresh code (once, within ResetNonceTTL) or
// the configured token lets a reset reach the handler; the device id does
// not any more.
func TestResetConfirmation(t *testing.T) {
	p := testPolicy()
	p.disabled = nil
	clock := time.Unix(1000, 0)
	now := func() time.Time { return clock }
	resets := 0
	h := func(_ context.Context, cmd Command) (any, error) {
		resets++
		return map[string]bool{"reset": true}, nil
	}
	run := func(payload string) Result {
		return p.execute(context.Background(), h, time.Second, CmdReset, []byte(payload), now)
	}
	ask := func() string {
		t.Helper()
		before := resets
		r := run("request")
		m, _ := r.Result.(map[string]any)
		code, _ := m["confirm_with"].(string)
		if !r.OK || len(code) != 32 || resets != before {
			t.Fatalf("request: %+v (resets %d)", r, resets)
		}
		return code
	}
	for _, payload := range []string{"pi-1", "yes", "REQUEST"} {
		if r := run(payload); r.OK || !strings.Contains(r.Error, `send "request"`) {
			t.Errorf("reset %q: %+v", payload, r)
		}
	}
	code := ask()
	if r := run(code); !r.OK || resets != 1 {
		t.Fatalf("reset with the fresh code: %+v", r)
	}
	if r := run(code); r.OK || resets != 1 {
		t.Errorf("the code worked twice: %+v", r)
	}
	code = ask()
	clock = clock.Add(ResetNonceTTL + time.Second)
	if r := run(code); r.OK || !strings.Contains(r.Error, "expired") || resets != 1 {
		t.Errorf("expired code: %+v", r)
	}
	first := ask()
	second := ask()
	if r := run(first); r.OK {
		t.Errorf("a superseded code worked: %+v", r)
	}
	if r := run(second); !r.OK || resets != 2 {
		t.Errorf("the newest code: %+v", r)
	}
	p.resetToken = "0123456789abcdef-token"
	if r := run(" 0123456789abcdef-token\n"); !r.OK || resets != 3 {
		t.Errorf("reset with the token: %+v", r)
	}
}

// TestMomentumEncodings: whatever fp.ParseFormat accepts parses (the old
// pattern refused z rounding and fp16s); formats outside the encoding
// search's range need a !.
func TestMomentumEncodings(t *testing.T) {
	p := testPolicy()
	for _, tc := range []struct {
		payload string
		formats []string
		forced  bool
		errHas  string
	}{
		{"e4m3b28z", []string{"e4m3b28z"}, false, ""},
		{"fp16s", []string{"fp16s"}, false, ""},
		{"bf16z", []string{"bf16z"}, false, ""},
		{"fp32", []string{"fp32"}, false, ""},
		{"e2m3b24s", []string{"e2m3b24s"}, false, ""},
		{"auto", []string{"auto"}, false, ""},
		{"e1m0", nil, false, "outside the encoding search's range of 4 to 16 bits; append ! (e1m0!)"},
		{"e1m0s!", []string{"e1m0s"}, true, ""},
		{"e3m0", nil, false, "no mantissa bits"},
		{"e8m10b130", nil, false, "19-bit codes"},
		{"e4m3b28s, e8m10b130!", []string{"e4m3b28s", "e8m10b130"}, true, ""},
		{"e4m3b999", nil, false, "bias"},
		{"float8", nil, false, `"float8"`},
		{"e4m3!!", nil, false, `"e4m3!"`},
	} {
		cmd, err := p.parseCommand(CmdMomentum, []byte(tc.payload))
		switch {
		case tc.errHas != "":
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("%q: %v; want an error containing %q", tc.payload, err, tc.errHas)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.payload, err)
		case strings.Join(cmd.Formats, ",") != strings.Join(tc.formats, ",") || cmd.Forced != tc.forced:
			t.Errorf("%q: formats %v forced %v; want %v %v", tc.payload, cmd.Formats, cmd.Forced, tc.formats, tc.forced)
		}
	}
}

// A host name reduced by DeviceIDFrom is a device id the check accepts.
func TestDeviceIDFrom(t *testing.T) {
	for name, want := range map[string]string{
		"raspberrypi":           "raspberrypi",
		"pi.local":              "pi_local",
		"héllo wörld":           "h_llo_w_rld",
		strings.Repeat("a", 70): strings.Repeat("a", 64),
	} {
		got := DeviceIDFrom(name)
		if got != want {
			t.Errorf("DeviceIDFrom(%q) = %q, want %q", name, got, want)
		}
		c := Config{Broker: "tcp://localhost:1883", DeviceID: got, ClientID: "bnnd-x"}
		for _, p := range c.Problems() {
			if p.Field == "device_id" {
				t.Errorf("DeviceIDFrom(%q) = %q is refused: %s", name, got, p.Msg)
			}
		}
	}
}
