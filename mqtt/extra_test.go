package mqtt

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/bnnd/bnnd/internal/testutil"
)

// TestWebSocket connects over ws:// (mosquitto's websocket listener needs
// libwebsockets features not always present, so a mochi websocket
// listener serves here).
func TestWebSocket(t *testing.T) {
	srv := mochi.New(&mochi.Options{Logger: testLogger(t)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	ws := listeners.NewWebsocket(listeners.Config{Type: listeners.TypeWS, ID: "ws", Address: addr})
	tcpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	tcp := listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: "tcp", Address: tcpAddr})
	for _, l := range []listeners.Listener{ws, tcp} {
		if err := srv.AddListener(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// As in Broker.Close: mochi's own disconnect at Close can deadlock
		// with a client that is disconnecting (seen under qemu-arm), so the
		// listeners close with a disconnect from a snapshot and leave the
		// server (a websocket listener would run mochi's on a second Close).
		for _, l := range []listeners.Listener{ws, tcp} {
			l.Close(func(id string) {
				for _, cl := range srv.Clients.GetAll() {
					if cl.Net.Listener == id && !cl.Closed() {
						_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
					}
				}
			})
			srv.Listeners.Delete(l.ID())
		}
		_ = srv.Close()
	})
	// The TCP listener listens from AddListener on; the websocket one in a
	// goroutine of Serve, which the client's connection retries cover
	// (startClient waits until it is connected).

	id := deviceID(t)
	rec := subscribe(t, "tcp://"+tcpAddr, nil, "bnnd/"+id+"/#")
	c := startClient(t, Config{Broker: "ws://" + addr + "/mqtt", DeviceID: id}, nil)
	if err := c.Publish(TopicHealth, map[string]string{"broker": "ws"}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor("bnnd/"+id+"/health", 5*time.Second, func(m recMsg) bool { return m.payload == `{"broker":"ws"}` })
}

func TestCommandsDisabled(t *testing.T) {
	b, err := StartBroker(BrokerOptions{Addr: "127.0.0.1:0", allowAll: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	var calls atomic.Int32
	handler := func(context.Context, Command) (any, error) { calls.Add(1); return nil, nil }

	// one command disabled: answered with an error, handler not called
	id := deviceID(t)
	rec := subscribe(t, b.URL(), nil, "bnnd/"+id+"/cmd/result")
	startClient(t, Config{Broker: b.URL(), DeviceID: id, CommandsEnabled: true, DisabledCommands: []string{CmdReset}}, handler)
	rec.publish("bnnd/"+id+"/cmd/reset", id, false)
	m := rec.waitFor("bnnd/"+id+"/cmd/result", 5*time.Second, nil)
	if !strings.Contains(m.payload, `"ok":false`) || !strings.Contains(m.payload, "disabled by configuration") {
		t.Errorf("disabled reset answered %s", m.payload)
	}

	// all commands disabled: not even subscribed, so nothing runs
	id2 := deviceID(t)
	rec2 := subscribe(t, b.URL(), nil, "bnnd/"+id2+"/#")
	c2 := startClient(t, Config{Broker: b.URL(), DeviceID: id2}, handler)
	rec2.publish("bnnd/"+id2+"/cmd/pause", "PRESS", false)
	rec2.publish("bnnd/"+id2+"/cmd/reset", id2, false)
	// The broker has routed both commands (the test's subscriber got them
	// back), and the connected client is not among the subscribers of
	// either topic: neither reached it.
	rec2.waitFor("bnnd/"+id2+"/cmd/pause", 5*time.Second, nil)
	rec2.waitFor("bnnd/"+id2+"/cmd/reset", 5*time.Second, nil)
	if cl, ok := b.srv.Clients.Get(c2.cfg.ClientID); !ok || cl.Closed() {
		t.Fatalf("client %s is not connected to the broker", c2.cfg.ClientID)
	}
	for _, cmd := range []string{"pause", "reset"} {
		topic := "bnnd/" + id2 + "/cmd/" + cmd
		if _, ok := b.srv.Topics.Subscribers(topic).Subscriptions[c2.cfg.ClientID]; ok {
			t.Errorf("with commands disabled the client subscribes to %s", topic)
		}
	}
	if calls.Load() != 0 || rec2.count("bnnd/"+id2+"/cmd/result") != 0 {
		t.Errorf("with commands disabled: %d handler calls, %d results", calls.Load(), rec2.count("bnnd/"+id2+"/cmd/result"))
	}
}

// fakeMessage is an inbound paho message for driving handlers directly.
type fakeMessage struct {
	topic    string
	payload  []byte
	retained bool
}

func (m fakeMessage) Duplicate() bool   { return false }
func (m fakeMessage) Qos() byte         { return 1 }
func (m fakeMessage) Retained() bool    { return m.retained }
func (m fakeMessage) Topic() string     { return m.topic }
func (m fakeMessage) MessageID() uint16 { return 1 }
func (m fakeMessage) Payload() []byte   { return m.payload }
func (m fakeMessage) Ack()              {}

var _ paho.Message = fakeMessage{}

// TestCommandFloodIsBounded: paho's handler never blocks; commands beyond
// the queue are refused with a "busy" result, and results stay bounded.
func TestCommandFloodIsBounded(t *testing.T) {
	c, err := New(Config{DeviceID: "pi-1", CommandsEnabled: true}, func(context.Context, Command) (any, error) { return nil, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for i := 0; i < commandQueueLen+resultQueueLen+10; i++ {
			c.onCommand(nil, fakeMessage{topic: "bnnd/pi-1/cmd/pause", payload: []byte("PRESS")})
		}
		c.onCommand(nil, fakeMessage{topic: "bnnd/pi-1/cmd/result", payload: []byte(`{}`)})
		c.onCommand(nil, fakeMessage{topic: "bnnd/pi-1/cmd/pause", payload: []byte("PRESS"), retained: true})
		c.onCommand(nil, fakeMessage{topic: "bnnd/pi-1/cmd/pause"}) // a cleared retained message
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("command handler blocked with no dispatcher running")
	}
	st := c.Stats()
	total := uint64(commandQueueLen + resultQueueLen + 10)
	if st.Commands != total || st.CommandsRefused != total-commandQueueLen {
		t.Errorf("commands %d refused %d; want %d and %d (own results, retained and empty commands ignored)", st.Commands, st.CommandsRefused, total, total-commandQueueLen)
	}
	if st.ResultsDropped != 10 || len(c.results.items) != resultQueueLen {
		t.Errorf("results dropped %d, queued %d; want 10 and %d", st.ResultsDropped, len(c.results.items), resultQueueLen)
	}
	b, _ := c.results.pop()
	if !strings.Contains(string(b), "busy") {
		t.Errorf("refusal result %s does not say busy", b)
	}
}
