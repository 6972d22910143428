// Package mqtt is bnnd's telemetry and command link: it publishes the
// daemon's JSON state over MQTT (github.com/eclipse/paho.mqtt.golang),
// receives commands, announces the device to Home Assistant, and can run an
// embedded broker (github.com/mochi-mqtt/server/v2) when none is configured.
// It knows nothing of training policy: the daemon produces the payloads and
// carries out the commands through a CommandHandler.
//
// # Use
//
//	c, err := mqtt.New(mqtt.Config{DeviceID: "pi-1", CommandsEnabled: true,
//		Discovery: true, Classes: []string{"sit", "walk"}}, handler, logger)
//	err = c.Start(ctx)                         // embedded broker errors here; network never blocks
//	_ = c.Publish(mqtt.TopicProgress, progress) // any JSON-marshalable value, or JSON bytes
//	_ = c.SetClasses(names)                    // label options; republishes discovery
//	st := c.Stats()                            // sent, replaced, reconnects, last error, …
//	err = c.Close(ctx)                         // retained "offline", disconnect
//
// Start connects in the background: a broker that is down, or refuses the
// credentials, does not block; WaitConnected(ctx) reports why it is not
// connected (errors.Is(err, ErrAuth) for refused credentials), and so do
// Err and Stats().LastError. The first connection is retried with
// exponential backoff and jitter, later ones by paho's auto-reconnect
// (backoff up to Config.ReconnectMax, 5 s by default, so the client is back
// within seconds of a broker's return). Subscriptions are made again in the
// OnConnect handler on every connection; SetOrderMatters(false), and paho's
// message handlers only queue, so they never block the client.
//
// # Topics
//
// Under <prefix>/<device-id>/ (prefix "bnnd" by default):
//
//	status           retained "online"; "offline" as the will and on Close
//	progress         JSON, e.g. step, samples_seen, samples_trained, prequential_acc,
//	                 holdout_acc, loss, samples_per_s, flips_per_step
//	memory           JSON: training-state breakdown, training_bytes, heap, rss_bytes
//	encoding         JSON: formats per layer, momentum_bits, lost_ratio, underflow, flips
//	prediction       JSON per window: class, score
//	health           JSON: sources, checkpoint age, broker
//	cmd/<name>       commands (label, pause, resume, checkpoint, reset, momentum)
//	cmd/result       one JSON acknowledgement per command:
//	                 {"command","ok","error" or "result","time"}
//
// The Home Assistant sensors read the keys named by the Key* constants
// (prequential_acc, holdout_acc, samples_per_s, training_bytes, rss_bytes,
// momentum_bits, lost_ratio): the daemon's payloads must carry them.
//
// # Telemetry never waits
//
// Publish marshals the value and puts it in the topic's mailbox, which holds
// only the latest value: a newer value replaces an unsent older one (counted
// in Stats.Replaced). One publisher goroutine drains the mailboxes, at most
// one message per topic per Config.Rates[topic] (default 1 s; 0 means no
// limit), and is the only goroutine that waits for the broker. After every
// (re)connection it publishes status, discovery and the latest value of
// every topic at once. Telemetry is QoS 0, not retained; status, discovery
// and results are QoS 1. paho's own message store is disabled (see
// discardStore), so no queue grows while the broker is away.
//
// # Commands
//
// Commands arrive on cmd/+ (only when Config.CommandsEnabled), are queued
// (16 at most; more get a "busy" error result) and run one at a time on a
// dispatcher goroutine. Before the handler sees a command it is validated:
// known name, not in Config.DisabledCommands, payload at most
// Config.MaxPayload bytes of UTF-8, and per command:
//
//	label       a class name, a class index, or "none"  → Command.Label, LabelName
//	pause, resume, checkpoint   payload ignored (Home Assistant sends "PRESS")
//	reset       "request" is answered with a one-time code; the code, sent
//	            within 30 s, runs the reset (or the Config.ResetTokenFile token)
//	momentum    anything fp.ParseFormat accepts, or auto; comma separated for
//	            one per layer → Command.Formats. Outside the encoding search's
//	            range (4 to 16 bits, at least one mantissa bit; fp32 allowed)
//	            a format needs a trailing ! (e1m0s!) → Command.Forced
//
// checkpoint, reset and momentum are rate-limited (a token bucket each:
// Config.CostlyBurst in a row, then one per CostlyInterval). Invalid and
// refused commands, handler errors, and (as a last line) handler panics are
// acknowledged with ok=false and a precise error; unknown commands too,
// their names cut to 64 bytes. Retained messages on cmd/ are ignored: they
// are stale, not requests; so are empty ones, which is how a retained
// message is cleared. paho reads every packet whole, with no size limit:
// the connection is wrapped so that a packet over MaxPayload plus 64 KiB
// closes it at its header (ErrPacketTooLarge) instead of being buffered.
//
// # Home Assistant
//
// With Config.Discovery, one retained device-based discovery message on
// <discovery-prefix>/device/<device-id>/config (prefix "homeassistant")
// declares the device (dev), origin (o), availability from status, and
// components (cmps) with unique ids: sensors for accuracy, samples/s,
// memory, momentum bits and lost ratio; a select for the label (options:
// "none" and the class names; command topic cmd/label); buttons for
// checkpoint, pause and resume. It is republished on SetClasses and when
// <discovery-prefix>/status says "online".
//
// # Embedded broker
//
// With Config.Broker empty or "embedded", Start runs StartBroker on
// Config.EmbeddedAddr (127.0.0.1:1883) and Close stops it. A busy address
// is an error naming it. Every client logs in (mochi's auth ledger holds
// the rights): the client's own user "bnnd", with a random password kept in
// BrokerOptions.CredentialsFile (created 0600 on first start; the log names
// the file, never the password), and BrokerOptions.Users with read or
// readwrite rights. Clients without a login are refused unless
// AnonymousRead, and then may read the telemetry but nothing under cmd/;
// wills a client could not publish itself are refused at connect. A listen
// address other than loopback needs TLS or AllowInsecureLAN. BrokerLimits
// cap packet size, retained messages (count and bytes, a hook of ours:
// mochi has no such cap), inflight and pending writes, clients and session
// lifetime, so no client can grow the daemon's memory.
package mqtt
