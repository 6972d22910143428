package mqtt

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
)

// brokerAuth is mochi's auth-ledger hook with password checks of our own:
// the ledger compares passwords in clear, and our users may be given as
// bcrypt hashes. Rights are the ledger's ACLs: every known user has one
// rule on "#" (read or readwrite), and clients without a user name fall
// through to the global rules, which give them at most the telemetry.
type brokerAuth struct {
	auth.Hook
	log       *slog.Logger
	ledger    *auth.Ledger
	users     map[string]userSecret
	anonymous bool
	allowAll  bool
}

type userSecret struct {
	plain []byte // sha256 of the password from a file or the credentials file
	hash  []byte // bcrypt
}

func newBrokerAuth(o BrokerOptions, log *slog.Logger) (*brokerAuth, error) {
	h := &brokerAuth{log: log, users: map[string]userSecret{}, anonymous: o.AnonymousRead, allowAll: o.allowAll}
	h.ledger = &auth.Ledger{Users: auth.Users{}}
	if o.own != nil {
		sum := sha256.Sum256([]byte(o.own.Password))
		h.users[o.own.Username] = userSecret{plain: sum[:]}
		h.ledger.Users[o.own.Username] = auth.UserRule{Username: auth.RString(o.own.Username), ACL: auth.Filters{"#": auth.ReadWrite}}
	}
	for i, u := range o.Users {
		var s userSecret
		if u.PasswordHash != "" {
			s.hash = []byte(u.PasswordHash)
		} else {
			pw, err := readSecretFile(u.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("mqtt: embedded_broker.users[%d] (%s): password_file: %w", i, u.Username, err)
			}
			sum := sha256.Sum256([]byte(pw))
			s.plain = sum[:]
		}
		h.users[u.Username] = s
		access := auth.ReadOnly
		if u.Access == AccessReadWrite {
			access = auth.ReadWrite
		}
		h.ledger.Users[u.Username] = auth.UserRule{Username: auth.RString(u.Username), ACL: auth.Filters{"#": access}}
	}
	// Global rules, checked in order, reach only clients without a user of
	// their own: the anonymous ones. Within a rule an allowing filter wins,
	// so the command deny comes first as a rule of its own.
	h.ledger.ACL = auth.ACLRules{{Filters: auth.Filters{auth.RString(o.Prefix + "/+/cmd/#"): auth.Deny}}}
	if o.AnonymousRead {
		h.ledger.ACL = append(h.ledger.ACL, auth.ACLRule{Filters: auth.Filters{
			auth.RString(o.Prefix + "/#"):          auth.ReadOnly,
			auth.RString(o.DiscoveryPrefix + "/#"): auth.ReadOnly,
		}})
	}
	h.ledger.ACL = append(h.ledger.ACL, auth.ACLRule{Filters: auth.Filters{"#": auth.Deny}})
	return h, nil
}

func (h *brokerAuth) options() *auth.Options { return &auth.Options{Ledger: h.ledger} }

func (h *brokerAuth) ID() string { return "bnnd-auth" }

// OnConnectAuthenticate admits known users with the right password, and
// anonymous clients (no user name, no password) when anonymous reading is
// on. A will the client could not publish itself is refused here, since
// mochi sends wills without an ACL check.
func (h *brokerAuth) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if h.allowAll {
		return true
	}
	user := string(pk.Connect.Username)
	ok := false
	if user == "" {
		ok = h.anonymous && len(pk.Connect.Password) == 0
	} else if s, known := h.users[user]; known {
		if s.hash != nil {
			ok = bcrypt.CompareHashAndPassword(s.hash, pk.Connect.Password) == nil
		} else {
			sum := sha256.Sum256(pk.Connect.Password)
			ok = subtle.ConstantTimeCompare(sum[:], s.plain) == 1
		}
	}
	if !ok {
		h.log.Warn("mqtt: embedded broker refused a client", "user", truncate(user, 64), "remote", cl.Net.Remote,
			"reason", map[bool]string{true: "anonymous clients are not allowed (embedded_broker.anonymous_read)", false: "unknown user or wrong password"}[user == ""])
		return false
	}
	if pk.Connect.WillFlag {
		if _, allowed := h.ledger.ACLOk(cl, pk.Connect.WillTopic, true); !allowed {
			h.log.Warn("mqtt: embedded broker refused a client whose will it may not publish", "user", truncate(user, 64),
				"remote", cl.Net.Remote, "will_topic", truncate(pk.Connect.WillTopic, 128))
			return false
		}
	}
	return true
}

func (h *brokerAuth) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if h.allowAll {
		return true
	}
	return h.Hook.OnACLCheck(cl, topic, write)
}

// limitsHook caps the retained messages (count and bytes), which mochi
// keeps without limit. A retained publish over the cap is refused: an
// MQTT 5 client gets a "quota exceeded" acknowledgement, an MQTT 3 client
// publishing with QoS 1 or 2 is disconnected (3.1.1 has no negative
// acknowledgement), a QoS 0 one is dropped.
type limitsHook struct {
	mochi.HookBase
	srv      *mochi.Server
	maxCount int
	maxBytes int
	// own is the daemon's user and ownTopics its retained state topics
	// (status, label, classes, discovery): those are retained even when
	// others have filled the caps, or a user with write rights could keep
	// the daemon from announcing itself. Only those: the daemon's login is
	// in a file that people read to use mosquitto_pub, and must not lift
	// the caps elsewhere.
	own       string
	ownTopics map[string]bool

	mu      sync.Mutex
	sizes   map[string]int // retained topic → topic and payload bytes
	total   int
	refused uint64
}

func (h *limitsHook) ID() string { return "bnnd-limits" }

func (h *limitsHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnPublish, mochi.OnWill, mochi.OnRetainedExpired}, []byte{b})
}

// reserve accounts for a retained message on topic of size bytes (0: the
// retained message is cleared) and reports whether it fits; forced ones
// are accounted for but always fit.
func (h *limitsHook) reserve(topic string, size int, forced bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.sizes[topic]
	if size == 0 {
		if had {
			delete(h.sizes, topic)
			h.total -= old
		}
		return true
	}
	count := len(h.sizes)
	if !had {
		count++
	}
	if !forced && (count > h.maxCount || h.total-old+size > h.maxBytes) {
		h.refused++
		return false
	}
	h.sizes[topic] = size
	h.total += size - old
	return true
}

// Retained reports the retained messages accounted for and their bytes.
func (h *limitsHook) Retained() (count, bytes int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sizes), h.total
}

func retainedSize(topic string, payload []byte) int {
	if len(payload) == 0 {
		return 0
	}
	return len(topic) + len(payload)
}

func (h *limitsHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if !pk.FixedHeader.Retain || h.reserve(pk.TopicName, retainedSize(pk.TopicName, pk.Payload), h.exempt(cl, pk.TopicName)) {
		return pk, nil
	}
	h.mu.Lock()
	n := h.refused
	h.mu.Unlock()
	if n == 1 || n%100 == 0 { // the first, then one in a hundred: a flood must not flood the journal
		h.Log.Warn("mqtt: embedded broker refused a retained message over its limits "+
			"(embedded_broker.max_retained_messages, max_retained_bytes)",
			"client", cl.ID, "user", truncate(string(cl.Properties.Username), 64), "topic", truncate(pk.TopicName, 128),
			"bytes", len(pk.Payload), "refused_so_far", n)
	}
	switch {
	case cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0:
		return pk, packets.ErrQuotaExceeded
	case pk.FixedHeader.Qos > 0:
		_ = h.srv.DisconnectClient(cl, packets.ErrQuotaExceeded)
	}
	return pk, packets.ErrRejectPacket
}

// OnWill keeps a will within the retained limits: one over them is still
// delivered, but not retained.
func (h *limitsHook) OnWill(cl *mochi.Client, will mochi.Will) (mochi.Will, error) {
	if will.Retain && !h.reserve(will.TopicName, retainedSize(will.TopicName, will.Payload), h.exempt(cl, will.TopicName)) {
		will.Retain = false
	}
	return will, nil
}

func (h *limitsHook) OnRetainedExpired(topic string) { h.reserve(topic, 0, false) }

func (h *limitsHook) exempt(cl *mochi.Client, topic string) bool {
	return h.own != "" && string(cl.Properties.Username) == h.own && h.ownTopics[topic]
}

func isBcrypt(s string) bool {
	if !strings.HasPrefix(s, "$2a$") && !strings.HasPrefix(s, "$2b$") && !strings.HasPrefix(s, "$2y$") {
		return false
	}
	_, err := bcrypt.Cost([]byte(s))
	return err == nil
}
