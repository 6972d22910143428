package mqtt

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// maxIncomingOverhead is what an incoming packet may have beyond a command
// payload: the topic (at most 64 KiB by the protocol) and the header.
const maxIncomingOverhead = 64 << 10

// ErrPacketTooLarge is wrapped by the connection error when the broker sent
// a packet bigger than this client accepts (Config.MaxPayload plus room for
// the topic).
var ErrPacketTooLarge = errors.New("broker sent a packet larger than bnnd accepts")

// openConnection dials like paho does and puts a limitConn in front: paho
// reads each packet whole into memory before any handler sees it and has no
// size limit of its own, so a 100 MB message on cmd/ would be buffered whole
// before the 4 KB command limit could refuse it. The limit closes the
// connection at the packet's header instead; paho then reconnects.
func (c *Client) openConnection(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	var conn net.Conn
	var err error
	switch uri.Scheme {
	case "ws", "wss":
		dial := *uri
		dial.User = nil // gorilla refuses user info
		var tlsc *tls.Config
		if uri.Scheme == "wss" {
			tlsc = o.TLSConfig
		}
		conn, err = paho.NewWebsocket(dial.String(), tlsc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	case "ssl", "tls", "mqtts":
		d := o.Dialer
		if d == nil {
			d = &net.Dialer{Timeout: o.ConnectTimeout}
		}
		conn, err = tls.DialWithDialer(d, "tcp", uri.Host, o.TLSConfig)
	default:
		d := o.Dialer
		if d == nil {
			d = &net.Dialer{Timeout: o.ConnectTimeout}
		}
		conn, err = proxy.FromEnvironmentUsing(d).Dial("tcp", uri.Host)
	}
	if err != nil {
		return nil, err
	}
	return &limitConn{Conn: conn, max: c.cfg.MaxPayload + maxIncomingOverhead, onTooLarge: c.packetTooLarge}, nil
}

func (c *Client) packetTooLarge(size int) {
	c.log.Error("mqtt: the broker sent a packet larger than bnnd accepts; connection closed before reading it. "+
		"Limit message sizes on the broker (mosquitto: message_size_limit), and clear a retained one under cmd/ if it comes back",
		"broker", c.shown, "bytes", size, "limit", c.cfg.MaxPayload+maxIncomingOverhead)
}

// limitConn follows the MQTT packet framing of what it reads (fixed header
// byte, remaining length, body) and fails the read that would start a body
// longer than max.
type limitConn struct {
	net.Conn
	max        int
	onTooLarge func(size int)

	mu     sync.Mutex
	state  int // 0: fixed header byte next; 1: in the remaining length; 2: in the body
	length int // remaining length decoded so far
	shift  uint
	body   int // body bytes still to come
	err    error
}

func (l *limitConn) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.Conn.Read(p)
	for i := 0; i < n; {
		switch l.state {
		case 0:
			l.state, l.length, l.shift = 1, 0, 0
			i++
		case 1:
			b := p[i]
			i++
			l.length |= int(b&0x7f) << l.shift
			l.shift += 7
			if b&0x80 != 0 {
				if l.shift >= 28 {
					l.err = fmt.Errorf("mqtt: malformed remaining length from the broker")
					return 0, l.err
				}
				continue
			}
			if l.length > l.max {
				if l.onTooLarge != nil {
					l.onTooLarge(l.length)
				}
				l.err = fmt.Errorf("mqtt: %w: %d bytes, limit %d", ErrPacketTooLarge, l.length, l.max)
				_ = l.Conn.Close()
				return 0, l.err
			}
			l.state, l.body = 2, l.length
			if l.body == 0 {
				l.state = 0
			}
		case 2:
			k := min(l.body, n-i)
			l.body -= k
			i += k
			if l.body == 0 {
				l.state = 0
			}
		}
	}
	return n, err
}

// redactError replaces a URL with user info in an error's text by its
// redacted form (dial errors quote the address they were given).
type redactError struct {
	err         error
	raw, redact string
}

func (e redactError) Error() string {
	if e.raw == e.redact {
		return e.err.Error()
	}
	return strings.ReplaceAll(e.err.Error(), e.raw, e.redact)
}

func (e redactError) Unwrap() error { return e.err }
