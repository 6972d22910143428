package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

const (
	statusOnline  = "online"
	statusOffline = "offline"

	commandQueueLen = 16 // commands waiting for the dispatcher; more are refused with "busy"
	resultQueueLen  = 64 // acknowledgements waiting for the publisher
)

// ErrAuth is wrapped by connection errors where the broker refused the
// credentials (bad user name or password, or not authorised).
var ErrAuth = errors.New("broker refused the credentials")

// Stats are counters since New; they prove what the publisher did.
type Stats struct {
	Connected        bool
	Connects         uint64 // successful connections (first one included)
	Reconnects       uint64 // successful connections after the first
	ConnectionsLost  uint64
	Sent             uint64 // telemetry messages handed to the broker connection
	Replaced         uint64 // telemetry values replaced by a newer one before being sent
	Republished      uint64 // telemetry values re-sent after a reconnect
	PublishErrors    uint64
	Discoveries      uint64 // discovery messages sent
	Commands         uint64 // commands received
	CommandErrors    uint64 // commands acknowledged with ok=false
	CommandsRefused  uint64 // commands refused because the queue was full
	ResultsDropped   uint64 // acknowledgements dropped (queue full or not sendable)
	LastError        string // last connection or publish error
	LastErrorTime    time.Time
	PerTopicSent     map[string]uint64
	PerTopicReplaced map[string]uint64
}

// Client publishes telemetry and receives commands for one device.
// All methods are safe for concurrent use.
type Client struct {
	cfg     Config
	log     *slog.Logger
	handler CommandHandler
	base    string // <prefix>/<device-id>/
	policy  commandPolicy
	broker  string // URL actually used
	shown   string // broker with the password of its user info hidden, for logs and errors
	user    string // the user name we log in with, for messages

	paho   paho.Client
	embedd *Broker

	mu           sync.Mutex
	boxes        []*mailbox // indexed like TelemetryTopics
	results      resultQueue
	classes      []string
	discoveryDue bool
	statusDue    bool
	classesDue   bool   // the retained classes topic is to be sent
	label        string // the retained label topic's payload; "" until SetLabel
	labelDue     bool
	lastErr      error
	lastErrTime  time.Time
	stats        Stats
	perSent      []uint64
	perReplaced  []uint64

	wake      chan struct{} // cap 1: something for the publisher to do
	cmds      chan inboundCommand
	connected atomic.Bool
	connCh    chan struct{} // closed and replaced on every connect, for WaitConnected
	connMu    sync.Mutex

	started             atomic.Bool
	closed              atomic.Bool
	cancel              context.CancelFunc
	wg                  sync.WaitGroup
	now                 func() time.Time
	hookBeforeReconnect func() // test seam: called before each reconnect attempt
}

type inboundCommand struct {
	name    string
	payload []byte
}

// New checks cfg and prepares a client; nothing touches the network until
// Start. handler may be nil when commands are disabled.
func New(cfg Config, handler CommandHandler, log *slog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.CommandsEnabled && handler == nil {
		return nil, errors.New("mqtt: commands are enabled but no command handler was given")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		cfg:         cfg,
		log:         log.With("component", "mqtt", "device", cfg.DeviceID),
		handler:     handler,
		base:        cfg.Prefix + "/" + cfg.DeviceID + "/",
		classes:     append([]string(nil), cfg.Classes...),
		results:     resultQueue{limit: resultQueueLen},
		wake:        make(chan struct{}, 1),
		cmds:        make(chan inboundCommand, commandQueueLen),
		connCh:      make(chan struct{}),
		now:         time.Now,
		perSent:     make([]uint64, len(TelemetryTopics)),
		perReplaced: make([]uint64, len(TelemetryTopics)),
	}
	for _, t := range TelemetryTopics {
		interval, ok := cfg.Rates[t]
		if !ok {
			interval = DefaultRate
		}
		c.boxes = append(c.boxes, &mailbox{topic: c.base + t, interval: interval})
	}
	disabled := map[string]bool{}
	for _, n := range cfg.DisabledCommands {
		disabled[n] = true
	}
	c.policy = commandPolicy{maxPayload: cfg.MaxPayload, disabled: disabled,
		classes: c.currentClasses, log: c.log, burst: cfg.CostlyBurst, interval: cfg.CostlyInterval}
	if cfg.ResetTokenFile != "" {
		tok, err := readResetToken(cfg.ResetTokenFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: commands.reset_token_file: %w", err)
		}
		c.policy.resetToken = tok
	}
	return c, nil
}

// commandEnabled reports whether the client takes the command.
func (c *Client) commandEnabled(name string) bool {
	return c.cfg.CommandsEnabled && !c.policy.disabled[name]
}

// Topic returns the absolute topic of a relative one ("progress" →
// "bnnd/<device-id>/progress").
func (c *Client) Topic(rel string) string { return c.base + rel }

func (c *Client) currentClasses() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.classes
}

// Start starts the embedded broker if configured (an error if its address
// is busy), then connects in the background and returns: a broker that is
// down or refuses us does not block the caller; the first connection is
// retried with backoff until Close, and errors show in Stats and the log.
func (c *Client) Start(ctx context.Context) error {
	if c.started.Swap(true) {
		return errors.New("mqtt: Start called twice")
	}
	if err := c.start(ctx); err != nil {
		c.closeEmbedded()
		c.started.Store(false)
		return err
	}
	return nil
}

func (c *Client) start(ctx context.Context) error {
	brokerURL := c.cfg.Broker
	username := c.cfg.Username
	var password string
	var tlsCfg *tls.Config
	if c.cfg.Embedded() {
		own, err := c.ownCredentials()
		if err != nil {
			return err
		}
		o := c.cfg.EmbeddedBroker
		o.Addr, o.Prefix, o.DiscoveryPrefix, o.own = c.cfg.EmbeddedAddr, c.cfg.Prefix, c.cfg.DiscoveryPrefix, &own
		o.ownTopics = []string{c.base + "status", c.base + TopicLabel, c.base + TopicClasses, discoveryTopic(c.cfg.DiscoveryPrefix, c.cfg.DeviceID)}
		b, err := StartBroker(o, c.log)
		if err != nil {
			return err
		}
		c.embedd = b
		brokerURL, username, password = b.URL(), own.Username, own.Password
		if b.scheme == "ssl" {
			// Our own connection stays on this machine: the certificate
			// names the LAN address, not the one we dial.
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true} //nolint:gosec // loopback to our own listener
		}
	}
	cfgForURL := c.cfg
	cfgForURL.Broker = brokerURL
	u, err := cfgForURL.brokerURL()
	if err != nil {
		return err
	}
	c.broker, c.shown, c.user = u.String(), u.Redacted(), username
	if username == "" && u.User != nil {
		c.user = u.User.Username()
	}
	if !c.cfg.Embedded() {
		if tlsCfg, err = c.cfg.tlsConfig(u); err != nil {
			return err
		}
		if password, err = c.cfg.password(); err != nil {
			return err
		}
	}

	opts := paho.NewClientOptions().
		AddBroker(c.broker).
		SetClientID(c.cfg.ClientID).
		SetUsername(username).
		SetPassword(password).
		SetProtocolVersion(4). // explicit: no silent retry with MQTT 3.1 on refusal
		SetCleanSession(true).
		SetStore(discardStore{}).
		SetKeepAlive(c.cfg.KeepAlive).
		SetPingTimeout(c.cfg.ConnectTimeout).
		SetConnectTimeout(c.cfg.ConnectTimeout).
		SetWriteTimeout(c.cfg.ConnectTimeout).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(c.cfg.ReconnectMax).
		SetConnectRetry(false). // the first connection is retried by connectLoop
		SetOrderMatters(false). // handlers run in their own goroutines and never block the client
		SetWill(c.base+"status", statusOffline, 1, true).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(c.onConnectionLost).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			if c.hookBeforeReconnect != nil {
				c.hookBeforeReconnect()
			}
		}).
		SetConnectionNotificationHandler(c.onNotification).
		SetCustomOpenConnectionFn(c.openConnection)
	if tlsCfg != nil {
		opts.SetTLSConfig(tlsCfg)
	}
	c.paho = paho.NewClient(opts)

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.connectLoop(runCtx) }()
	go func() { defer c.wg.Done(); c.publishLoop(runCtx) }()
	go func() { defer c.wg.Done(); c.dispatchLoop(runCtx) }()
	c.log.Info("mqtt: starting", "broker", c.shown, "client_id", c.cfg.ClientID, "embedded", c.embedd != nil)
	return nil
}

// ownCredentials are the embedded broker's user for our own client: kept
// in the credentials file, or for this run only without one. The password
// is never logged, only where to find it.
func (c *Client) ownCredentials() (Credentials, error) {
	path := c.cfg.EmbeddedBroker.CredentialsFile
	if path == "" {
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return Credentials{}, fmt.Errorf("mqtt: embedded broker credentials: %w", err)
		}
		return Credentials{Username: ownUsername, Password: base64.RawURLEncoding.EncodeToString(raw)}, nil
	}
	own, created, err := EnsureCredentials(path)
	if err != nil {
		return own, err
	}
	if created {
		c.log.Info("mqtt: created the embedded broker's credentials (user and password for mosquitto_sub -u/-P)",
			"user", own.Username, "file", path)
	} else {
		c.log.Info("mqtt: embedded broker requires a login; credentials in file", "user", own.Username, "file", path)
	}
	return own, nil
}

// BrokerURL is the broker the client connects to (the embedded broker's
// address once Start ran with the embedded broker), its password hidden.
func (c *Client) BrokerURL() string { return c.shown }

// connectLoop makes the first connection, retrying with exponential backoff
// and jitter; after that paho's auto-reconnect takes over.
func (c *Client) connectLoop(ctx context.Context) {
	delay := 500 * time.Millisecond
	for {
		tok := c.paho.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return
		}
		if tok.Error() == nil {
			return
		}
		c.recordConnectError(tok.Error())
		wait := delay/2 + mrand.N(delay/2+1)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		delay = min(delay*2, c.cfg.ReconnectMax)
	}
}

func (c *Client) recordConnectError(err error) {
	if errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		err = fmt.Errorf("mqtt: %s refused user %q: %w (%w)", c.shown, c.user, ErrAuth, err)
	} else {
		err = fmt.Errorf("mqtt: cannot connect to %s: %w", c.shown, redactError{err, c.broker, c.shown})
	}
	c.mu.Lock()
	repeated := c.lastErr != nil && c.lastErr.Error() == err.Error()
	c.lastErr, c.lastErrTime = err, c.now()
	c.mu.Unlock()
	if !repeated { // log a change of error, not every retry
		c.log.Error("mqtt: connection failed; retrying", "err", err)
	}
}

func (c *Client) onNotification(_ paho.Client, n paho.ConnectionNotification) {
	if f, ok := n.(paho.ConnectionNotificationFailed); ok && f.Reason != nil {
		c.recordConnectError(f.Reason)
	}
}

// onConnect runs in its own goroutine on every (re)connection (paho starts
// it with go, and SetOrderMatters(false) lets it wait for acknowledgements
// without stalling the client). It resubscribes, waits for the broker to
// confirm so that "connected" means commands are heard, and hands the
// rest to the publisher.
func (c *Client) onConnect(pc paho.Client) {
	if c.closed.Load() {
		return
	}
	var subs []paho.Token
	var what []string
	if c.cfg.CommandsEnabled {
		subs = append(subs, pc.Subscribe(c.base+"cmd/+", 1, c.onCommand))
		what = append(what, c.base+"cmd/+")
	}
	if c.cfg.Discovery {
		subs = append(subs, pc.Subscribe(c.cfg.DiscoveryPrefix+"/status", 1, c.onHAStatus))
		what = append(what, c.cfg.DiscoveryPrefix+"/status")
	}
	for i, tok := range subs {
		if !tok.WaitTimeout(c.cfg.ConnectTimeout) {
			c.log.Warn("mqtt: no answer to subscribe", "topic", what[i])
		} else if err := tok.Error(); err != nil {
			c.log.Error("mqtt: subscribe failed", "topic", what[i], "err", err)
		} else if st, ok := tok.(*paho.SubscribeToken); ok && st.Result()[what[i]] == 0x80 {
			c.log.Error("mqtt: broker refused the subscription (check its ACL)", "topic", what[i])
		}
	}
	c.mu.Lock()
	c.stats.Connects++
	if c.stats.Connects > 1 {
		c.stats.Reconnects++
	}
	c.statusDue = true
	c.discoveryDue = c.cfg.Discovery
	c.classesDue = true
	c.labelDue = c.label != ""
	for _, b := range c.boxes {
		b.resend()
	}
	c.lastErr = nil
	c.mu.Unlock()
	c.connected.Store(true)
	c.connMu.Lock()
	close(c.connCh)
	c.connCh = make(chan struct{})
	c.connMu.Unlock()
	c.log.Info("mqtt: connected", "broker", c.shown)
	c.poke()
}

func (c *Client) onConnectionLost(_ paho.Client, err error) {
	c.connected.Store(false)
	c.mu.Lock()
	c.stats.ConnectionsLost++
	c.lastErr, c.lastErrTime = fmt.Errorf("mqtt: connection to %s lost: %w", c.shown, err), c.now()
	c.mu.Unlock()
	c.log.Warn("mqtt: connection lost; reconnecting", "broker", c.shown, "err", err)
}

func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// onCommand is paho's handler for cmd/+: it only queues (never blocks).
func (c *Client) onCommand(_ paho.Client, m paho.Message) {
	topic := m.Topic()
	name := topic[min(len(topic), len(c.base)+len("cmd/")):]
	if name == resultTopic || m.Retained() {
		return // our own acknowledgements; retained commands are stale, not requests
	}
	if len(m.Payload()) == 0 {
		// How MQTT clears a retained message: the broker passes the empty
		// message on to us, and it must not pause or reset anything.
		c.log.Debug("mqtt: empty command payload ignored (a cleared retained message)", "command", truncate(name, maxNameInReply))
		return
	}
	name = truncate(name, maxNameInReply)
	c.mu.Lock()
	c.stats.Commands++
	c.mu.Unlock()
	select {
	case c.cmds <- inboundCommand{name: name, payload: m.Payload()}:
	default:
		c.mu.Lock()
		c.stats.CommandsRefused++
		c.stats.CommandErrors++
		c.mu.Unlock()
		c.queueResult(Result{Command: name, Error: name + ": busy: too many commands waiting, try again", Time: c.now()})
	}
}

func (c *Client) onHAStatus(_ paho.Client, m paho.Message) {
	if string(m.Payload()) == statusOnline {
		c.mu.Lock()
		c.discoveryDue = true
		c.mu.Unlock()
		c.poke()
	}
}

func (c *Client) dispatchLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-c.cmds:
			res := c.policy.execute(ctx, c.handler, c.cfg.CommandTimeout, in.name, in.payload, c.now)
			if !res.OK {
				c.mu.Lock()
				c.stats.CommandErrors++
				c.mu.Unlock()
				c.log.Warn("mqtt: command failed", "command", res.Command, "err", res.Error)
			} else {
				c.log.Info("mqtt: command done", "command", res.Command)
			}
			c.queueResult(res)
		}
	}
}

func (c *Client) queueResult(res Result) {
	b, err := json.Marshal(res)
	if err != nil { // execute checked the result marshals; keep the answer anyway
		res.Result = nil
		res.OK = false
		res.Error = fmt.Sprintf("%s: result cannot be encoded as JSON: %v", res.Command, err)
		b, _ = json.Marshal(res)
	}
	c.mu.Lock()
	if c.results.push(b) {
		c.stats.ResultsDropped++
	}
	c.mu.Unlock()
	c.poke()
}

// Publish hands a telemetry value to the topic's mailbox and returns at
// once: it never waits for the broker. v is marshalled to JSON; a []byte
// or json.RawMessage is taken as JSON already (and copied). A newer value
// replaces an unsent older one. Errors: unknown topic, or v not JSON.
func (c *Client) Publish(topic string, v any) error {
	idx := -1
	for i, t := range TelemetryTopics {
		if t == topic {
			idx = i
			break
		}
	}
	if idx < 0 {
		return fmt.Errorf("mqtt: publish: unknown topic %q (known: %v)", topic, TelemetryTopics)
	}
	var payload []byte
	switch p := v.(type) {
	case []byte:
		payload = append([]byte(nil), p...)
	case json.RawMessage:
		payload = append([]byte(nil), p...)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("mqtt: publish %s: %w", topic, err)
		}
		payload = b
	}
	if !json.Valid(payload) {
		return fmt.Errorf("mqtt: publish %s: payload is not valid JSON", topic)
	}
	c.mu.Lock()
	if c.boxes[idx].put(payload) {
		c.perReplaced[idx]++
		c.stats.Replaced++
	}
	c.mu.Unlock()
	c.poke()
	return nil
}

// SetClasses changes the class names (label command, the discovery
// select's and prediction sensor's options) and republishes discovery and
// the retained classes topic.
func (c *Client) SetClasses(classes []string) error {
	if err := checkClasses(classes); err != nil {
		return err
	}
	c.mu.Lock()
	c.classes = append([]string(nil), classes...)
	c.discoveryDue = c.cfg.Discovery
	c.classesDue = true
	c.mu.Unlock()
	c.poke()
	return nil
}

// SetLabel publishes the current label ("" or "none": no label) on the
// retained label topic, now and after every reconnect, so that Home
// Assistant's select shows it after either side restarts.
func (c *Client) SetLabel(name string) {
	if name == "" {
		name = LabelNone
	}
	c.mu.Lock()
	c.label = name
	c.labelDue = true
	c.mu.Unlock()
	c.poke()
}

// Connected reports whether the connection to the broker is up.
func (c *Client) Connected() bool { return c.connected.Load() }

// WaitConnected waits until the client is connected. If ctx ends first the
// error says why the last attempt failed (errors.Is(err, ErrAuth) when the
// broker refused the credentials).
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.connMu.Lock()
		ch := c.connCh
		c.connMu.Unlock()
		if c.connected.Load() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			c.mu.Lock()
			last := c.lastErr
			c.mu.Unlock()
			if last != nil {
				return fmt.Errorf("mqtt: not connected: %w", last)
			}
			return fmt.Errorf("mqtt: not connected to %s: %w", c.shown, ctx.Err())
		}
	}
}

// Err is the last connection or publish error, nil once connected cleanly.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Connected = c.connected.Load()
	if c.lastErr != nil {
		s.LastError, s.LastErrorTime = c.lastErr.Error(), c.lastErrTime
	}
	s.PerTopicSent = make(map[string]uint64, len(TelemetryTopics))
	s.PerTopicReplaced = make(map[string]uint64, len(TelemetryTopics))
	for i, t := range TelemetryTopics {
		s.PerTopicSent[t] = c.perSent[i]
		s.PerTopicReplaced[t] = c.perReplaced[i]
	}
	return s
}

// publishLoop is the single publisher: it drains the mailboxes within their
// rate limits, sends acknowledgements, status and discovery. It blocks on
// the broker so that nobody else has to.
func (c *Client) publishLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := c.flush(ctx)
		if next > 0 {
			timer.Reset(next) // since Go 1.23 Reset also discards a stale expiry
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// flush sends everything that is due and returns how long until the next
// rate-limited value becomes due (0: nothing waiting on a timer).
func (c *Client) flush(ctx context.Context) time.Duration {
	if !c.paho.IsConnectionOpen() || ctx.Err() != nil {
		return 0 // onConnect pokes us
	}
	c.mu.Lock()
	statusDue := c.statusDue
	c.statusDue = false
	c.mu.Unlock()
	if statusDue && !c.send(c.base+"status", 1, true, []byte(statusOnline)) {
		c.mu.Lock()
		c.statusDue = true
		c.mu.Unlock()
		return time.Second
	}

	c.mu.Lock()
	discoveryDue := c.discoveryDue
	c.discoveryDue = false
	classes := c.classes
	c.mu.Unlock()
	if discoveryDue {
		payload, err := discoveryPayload(c.base, c.cfg.DeviceID, c.cfg.SoftwareVersion, classes, c.commandEnabled)
		if err == nil && c.send(discoveryTopic(c.cfg.DiscoveryPrefix, c.cfg.DeviceID), 1, true, payload) {
			c.mu.Lock()
			c.stats.Discoveries++
			c.mu.Unlock()
		} else {
			c.mu.Lock()
			c.discoveryDue = true
			c.mu.Unlock()
			return time.Second
		}
	}

	if !c.sendState(&c.classesDue, TopicClasses, func() []byte { b, _ := json.Marshal(append([]string{}, classes...)); return b }) ||
		!c.sendState(&c.labelDue, TopicLabel, func() []byte { return []byte(c.label) }) {
		return time.Second
	}

	for {
		c.mu.Lock()
		b, ok := c.results.pop()
		c.mu.Unlock()
		if !ok {
			break
		}
		if !c.send(c.base+"cmd/"+resultTopic, 1, false, b) {
			c.mu.Lock()
			c.results.unpop(b)
			c.mu.Unlock()
			return time.Second
		}
	}

	now := c.now()
	var next time.Duration
	for i, box := range c.boxes {
		c.mu.Lock()
		due := box.due(now)
		republish := box.lastSent.IsZero() && c.perSent[i] > 0
		wait := time.Duration(0)
		if box.pending && !due {
			wait = box.dueAt().Sub(now)
		}
		var payload []byte
		if due {
			payload = box.take()
		}
		c.mu.Unlock()
		if wait > 0 && (next == 0 || wait < next) {
			next = wait
		}
		if !due {
			continue
		}
		if !c.send(box.topic, 0, false, payload) {
			c.mu.Lock()
			box.sendFailed(payload)
			c.mu.Unlock()
			return time.Second
		}
		c.mu.Lock()
		box.markSent(c.now())
		c.perSent[i]++
		c.stats.Sent++
		if republish {
			c.stats.Republished++
		}
		c.mu.Unlock()
		if box.interval > 0 && (next == 0 || box.interval < next) {
			next = box.interval // a value may arrive meanwhile
		}
	}
	return next
}

// sendState publishes a retained state topic if *due, and reports false
// when that failed (it stays due).
func (c *Client) sendState(due *bool, topic string, payload func() []byte) bool {
	c.mu.Lock()
	send := *due
	*due = false
	var p []byte
	if send {
		p = payload()
	}
	c.mu.Unlock()
	if !send || c.send(c.base+topic, 1, true, p) {
		return true
	}
	c.mu.Lock()
	*due = true
	c.mu.Unlock()
	return false
}

// send publishes and waits for the broker connection to take the message.
func (c *Client) send(topic string, qos byte, retained bool, payload []byte) bool {
	tok := c.paho.Publish(topic, qos, retained, payload)
	var err error
	if !tok.WaitTimeout(c.cfg.ConnectTimeout) {
		err = errors.New("timed out")
	} else {
		err = tok.Error()
	}
	if err != nil {
		c.mu.Lock()
		c.stats.PublishErrors++
		c.lastErr, c.lastErrTime = fmt.Errorf("mqtt: publish %s: %w", topic, err), c.now()
		c.mu.Unlock()
		return false
	}
	return true
}

// Close publishes the retained "offline" status, disconnects and stops the
// embedded broker if Start started one. ctx bounds the wait for the broker.
func (c *Client) Close(ctx context.Context) error {
	if c.closed.Swap(true) || !c.started.Load() {
		return nil
	}
	c.cancel()
	c.wg.Wait()
	var err error
	if c.paho.IsConnectionOpen() {
		// A clean stop sends what is still waiting (latest values, results)
		// regardless of rate limits, then the status.
		c.mu.Lock()
		for _, b := range c.boxes {
			if b.pending {
				b.lastSent = time.Time{}
			}
		}
		c.mu.Unlock()
		c.flush(ctx)
		tok := c.paho.Publish(c.base+"status", 1, true, statusOffline)
		select {
		case <-tok.Done():
			if tok.Error() != nil {
				err = fmt.Errorf("mqtt: publish offline status: %w", tok.Error())
			}
		case <-ctx.Done():
			err = fmt.Errorf("mqtt: publish offline status: %w", ctx.Err())
		}
	}
	c.paho.Disconnect(250)
	c.connected.Store(false)
	c.closeEmbedded()
	c.log.Info("mqtt: closed")
	return err
}

func (c *Client) closeEmbedded() {
	if c.embedd != nil {
		if err := c.embedd.Close(); err != nil {
			c.log.Warn("mqtt: closing embedded broker", "err", err)
		}
		c.embedd = nil
	}
}
