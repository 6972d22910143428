package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is the embedded MQTT broker (mochi-mqtt) used when no broker is
// configured. It allows every client, so it listens on loopback by default.
type Broker struct {
	srv  *mochi.Server
	tcp  *listeners.TCP
	addr string
}

// StartBroker starts an embedded broker listening on addr (host:port; port
// 0 picks a free one, see Addr). A busy address is an error naming it.
func StartBroker(addr string, log *slog.Logger) (*Broker, error) {
	if addr == "" {
		addr = DefaultEmbeddedAddr
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// mochi logs every client connection at Info; keep only its warnings.
	quiet := slog.New(minLevelHandler{log.Handler(), slog.LevelWarn}).With("component", "mqtt-broker")
	srv := mochi.New(&mochi.Options{InlineClient: false, Logger: quiet})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("mqtt: embedded broker: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: "tcp", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("mqtt: embedded broker cannot listen on %s: address already in use "+
				"(another MQTT broker such as mosquitto may be running there: point mqtt broker at it, "+
				"or choose another embedded address): %w", addr, err)
		}
		return nil, fmt.Errorf("mqtt: embedded broker cannot listen on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("mqtt: embedded broker on %s: %w", addr, err)
	}
	b := &Broker{srv: srv, tcp: tcp, addr: tcp.Address()}
	log.Info("mqtt: embedded broker listening", "addr", b.addr)
	return b, nil
}

// Addr is the address the broker listens on, with the port chosen.
func (b *Broker) Addr() string { return b.addr }

// URL is the tcp:// URL clients connect to.
func (b *Broker) URL() string { return "tcp://" + b.addr }

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
