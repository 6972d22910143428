package mqtt

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Access rights of an embedded broker user.
const (
	AccessRead      = "read"      // subscribe to everything, publish nothing
	AccessReadWrite = "readwrite" // subscribe and publish everywhere (commands included)
)

// BrokerUser is one more user of the embedded broker. The password is
// either in a file (plain text, trailing newline ignored) or given as a
// bcrypt hash (bnnd mqtt-credentials -hash, htpasswd -B), never in clear in
// the configuration.
type BrokerUser struct {
	Username     string
	PasswordFile string
	PasswordHash string // $2a$/$2b$/$2y$ bcrypt
	Access       string // AccessRead or AccessReadWrite; default read
}

// BrokerLimits bound what clients can make the embedded broker (and so the
// daemon's process) hold. Zero fields take the defaults below.
type BrokerLimits struct {
	MaxPacketSize       int           // largest MQTT packet accepted, in bytes; bigger ones close the connection before they are read
	MaxRetainedMessages int           // retained topics held at once
	MaxRetainedBytes    int           // topic and payload bytes of all retained messages
	MaxInflight         int           // QoS 1/2 messages in flight and writes pending per client
	MaxClients          int           // clients connected at once
	MessageExpiry       time.Duration // drop undelivered and retained messages older than this; 0: never
	SessionExpiry       time.Duration // forget a disconnected persistent session after this
}

// Defaults of BrokerLimits. Worst case per client, the broker holds
// MaxInflight packets of MaxPacketSize waiting to be written.
const (
	DefaultMaxPacketSize       = 32 << 10
	DefaultMaxRetainedMessages = 256
	DefaultMaxRetainedBytes    = 1 << 20
	DefaultMaxInflight         = 32
	DefaultMaxClients          = 16
	DefaultSessionExpiry       = 10 * time.Minute
)

func (l BrokerLimits) withDefaults() BrokerLimits {
	l.MaxPacketSize = cmp.Or(l.MaxPacketSize, DefaultMaxPacketSize)
	l.MaxRetainedMessages = cmp.Or(l.MaxRetainedMessages, DefaultMaxRetainedMessages)
	l.MaxRetainedBytes = cmp.Or(l.MaxRetainedBytes, DefaultMaxRetainedBytes)
	l.MaxInflight = cmp.Or(l.MaxInflight, DefaultMaxInflight)
	l.MaxClients = cmp.Or(l.MaxClients, DefaultMaxClients)
	l.SessionExpiry = cmp.Or(l.SessionExpiry, DefaultSessionExpiry)
	return l
}

// BrokerOptions configures the embedded broker. Every client must log in:
// the daemon's own user (generated, kept in CredentialsFile) and Users;
// anonymous clients only when AnonymousRead, and then they may only read
// telemetry (nothing under <prefix>/+/cmd/).
type BrokerOptions struct {
	Addr string // host:port; default 127.0.0.1:1883; port 0 picks a free one

	// CredentialsFile keeps the generated user and password of the daemon's
	// own client (created on first start, mode 0600). Empty: credentials
	// are generated in memory for this run only.
	CredentialsFile string
	Users           []BrokerUser
	AnonymousRead   bool

	// A listen address other than loopback needs TLS (TLSCertFile and
	// TLSKeyFile, PEM) or AllowInsecureLAN: passwords would cross the
	// network in clear.
	TLSCertFile, TLSKeyFile string
	AllowInsecureLAN        bool

	Limits BrokerLimits

	// Topic layout, for the anonymous read rights; defaults "bnnd" and
	// "homeassistant" (Start fills them from Config).
	Prefix, DiscoveryPrefix string

	// own is the daemon's user and ownTopics its retained topics (status,
	// label, classes, discovery), set by Client.start.
	own       *Credentials
	ownTopics []string
	// allowAll admits every client with every right: tests of the client
	// against a plain broker only; no configuration can set it.
	allowAll bool
}

// problems checks the options for the listen address addr.
func (o BrokerOptions) problems(addr string) []*FieldError {
	var errs []*FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		bad("embedded_broker.tls_cert_file", "tls_cert_file and tls_key_file must be set together")
	}
	if !IsLoopbackAddr(addr) && o.TLSCertFile == "" && !o.AllowInsecureLAN {
		bad("embedded_broker.listen", "%s is reachable from other machines, where passwords would cross the network in clear: "+
			"set embedded_broker.tls_cert_file and tls_key_file, or embedded_broker.allow_insecure_lan: true to accept that, "+
			"or listen on 127.0.0.1", addr)
	}
	seen := map[string]int{}
	for i, u := range o.Users {
		field := fmt.Sprintf("embedded_broker.users[%d]", i)
		switch {
		case u.Username == "" || len(u.Username) > 64 || strings.ContainsAny(u.Username, ":#+/\x00") || strings.TrimSpace(u.Username) != u.Username:
			bad(field+".username", "%q: want 1 to 64 characters without : # + / or surrounding spaces", truncate(u.Username, 64))
		case u.Username == ownUsername:
			bad(field+".username", "%q is the daemon's own user (its password is in the credentials file)", u.Username)
		}
		if j, dup := seen[u.Username]; dup {
			bad(field+".username", "%q is also embedded_broker.users[%d]", u.Username, j)
		}
		seen[u.Username] = i
		if (u.PasswordFile == "") == (u.PasswordHash == "") {
			bad(field, "set exactly one of password_file and password_hash")
		} else if u.PasswordHash != "" && !isBcrypt(u.PasswordHash) {
			bad(field+".password_hash", "not a bcrypt hash ($2a$, $2b$ or $2y$; make one with 'bnnd mqtt-credentials -hash' or htpasswd -nbB)")
		}
		if u.Access != "" && u.Access != AccessRead && u.Access != AccessReadWrite {
			bad(field+".access", "%q: want read or readwrite", truncate(u.Access, 32))
		}
	}
	l := o.Limits.withDefaults()
	if l.MaxPacketSize < 4<<10 || l.MaxPacketSize > 256<<20 {
		bad("embedded_broker.max_packet_size", "%d: want 4KiB to 256MiB", l.MaxPacketSize)
	}
	if l.MaxRetainedMessages < 16 || l.MaxRetainedMessages > 1<<20 {
		bad("embedded_broker.max_retained_messages", "%d: want 16 to 1048576 (bnnd itself retains 2 per device)", l.MaxRetainedMessages)
	}
	if l.MaxRetainedBytes < 64<<10 || l.MaxRetainedBytes > 1<<30 {
		bad("embedded_broker.max_retained_bytes", "%d: want 64KiB to 1GiB", l.MaxRetainedBytes)
	}
	if l.MaxInflight < 1 || l.MaxInflight > 65535 {
		bad("embedded_broker.max_inflight", "%d: want 1 to 65535", l.MaxInflight)
	}
	if l.MaxClients < 2 || l.MaxClients > 100000 {
		bad("embedded_broker.max_clients", "%d: want 2 to 100000 (bnnd itself is one)", l.MaxClients)
	}
	if l.MessageExpiry < 0 || l.MessageExpiry > 0 && l.MessageExpiry < time.Minute {
		bad("embedded_broker.message_expiry", "%v: want 0s (never) or at least 1m", l.MessageExpiry)
	}
	if l.SessionExpiry < time.Second || l.SessionExpiry > 7*24*time.Hour {
		bad("embedded_broker.session_expiry", "%v: want 1s to 168h", l.SessionExpiry)
	}
	return errs
}

// IsLoopbackAddr reports whether host:port only listens on this machine
// (127.0.0.0/8, ::1 or localhost). An empty host means every interface.
func IsLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Broker is the embedded MQTT broker (mochi-mqtt) used when no broker is
// configured.
type Broker struct {
	srv    *mochi.Server
	tcp    *listeners.TCP
	addr   string
	scheme string
	limits *limitsHook
}

// StartBroker starts an embedded broker (see BrokerOptions; Addr's port 0
// picks a free one, see Addr). A busy address is an error naming it.
func StartBroker(o BrokerOptions, log *slog.Logger) (*Broker, error) {
	if o.Addr == "" {
		o.Addr = DefaultEmbeddedAddr
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.DiscoveryPrefix == "" {
		o.DiscoveryPrefix = DefaultDiscoveryPrefix
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if errs := o.problems(o.Addr); len(errs) > 0 {
		all := make([]error, len(errs))
		for i, e := range errs {
			all[i] = e
		}
		return nil, errors.Join(all...)
	}
	l := o.Limits.withDefaults()
	// mochi logs every client connection at Info; keep only its warnings.
	quiet := slog.New(minLevelHandler{log.Handler(), slog.LevelWarn}).With("component", "mqtt-broker")
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(l.MaxPacketSize)
	caps.MaximumClients = int64(l.MaxClients)
	caps.MaximumInflight = uint16(l.MaxInflight)
	caps.ReceiveMaximum = uint16(l.MaxInflight)
	caps.MaximumClientWritesPending = int32(l.MaxInflight)
	caps.MaximumSessionExpiryInterval = uint32(l.SessionExpiry / time.Second)
	// mochi also deletes retained messages older than this, bnnd's own
	// status and discovery included: no expiry unless asked for.
	caps.MaximumMessageExpiryInterval = 0
	if l.MessageExpiry > 0 {
		caps.MaximumMessageExpiryInterval = int64(l.MessageExpiry / time.Second)
	}
	srv := mochi.New(&mochi.Options{InlineClient: false, Logger: quiet, Capabilities: caps})

	authHook, err := newBrokerAuth(o, quiet)
	if err != nil {
		return nil, err
	}
	if err := srv.AddHook(authHook, authHook.options()); err != nil {
		return nil, fmt.Errorf("mqtt: embedded broker: %w", err)
	}
	limits := &limitsHook{srv: srv, maxCount: l.MaxRetainedMessages, maxBytes: l.MaxRetainedBytes, sizes: map[string]int{}}
	if o.own != nil {
		limits.own = o.own.Username
		limits.ownTopics = map[string]bool{}
		for _, t := range o.ownTopics {
			limits.ownTopics[t] = true
		}
	}
	if err := srv.AddHook(limits, nil); err != nil {
		return nil, fmt.Errorf("mqtt: embedded broker: %w", err)
	}

	lc := listeners.Config{Type: listeners.TypeTCP, ID: "tcp", Address: o.Addr}
	scheme := "tcp"
	if o.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: embedded broker: tls_cert_file %s / tls_key_file %s: %w", o.TLSCertFile, o.TLSKeyFile, err)
		}
		lc.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		scheme = "ssl"
	}
	tcp := listeners.NewTCP(lc)
	if err := srv.AddListener(tcp); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("mqtt: embedded broker cannot listen on %s: address already in use "+
				"(another MQTT broker such as mosquitto may be running there: point mqtt broker at it, "+
				"or choose another embedded address): %w", o.Addr, err)
		}
		return nil, fmt.Errorf("mqtt: embedded broker cannot listen on %s: %w", o.Addr, err)
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("mqtt: embedded broker on %s: %w", o.Addr, err)
	}
	b := &Broker{srv: srv, tcp: tcp, addr: tcp.Address(), scheme: scheme, limits: limits}
	log.Info("mqtt: embedded broker listening", "addr", b.addr, "tls", scheme == "ssl",
		"users", len(o.Users)+1, "anonymous_read", o.AnonymousRead,
		"max_packet_size", l.MaxPacketSize, "max_retained_bytes", l.MaxRetainedBytes, "max_clients", l.MaxClients)
	return b, nil
}

// Addr is the address the broker listens on, with the port chosen.
func (b *Broker) Addr() string { return b.addr }

// URL is the URL clients connect to (tcp://, or ssl:// with TLS).
func (b *Broker) URL() string { return b.scheme + "://" + b.addr }

// Close disconnects every client and stops listening.
func (b *Broker) Close() error {
	// mochi v2.7.9 disconnects a listener's clients through
	// Clients.GetByListener, which takes the clients lock for reading twice
	// and so deadlocks when a client disconnects at that moment (a writer
	// waits between the two). Close the listener with our own disconnect
	// from a snapshot first; srv.Close then finds it closed.
	b.tcp.Close(b.disconnectClients)
	if err := b.srv.Close(); err != nil {
		return fmt.Errorf("mqtt: closing embedded broker on %s: %w", b.addr, err)
	}
	return nil
}

func (b *Broker) disconnectClients(listener string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// minLevelHandler drops records below a level.
type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevelHandler{h.Handler.WithAttrs(a), h.min}
}

func (h minLevelHandler) WithGroup(n string) slog.Handler {
	return minLevelHandler{h.Handler.WithGroup(n), h.min}
}
