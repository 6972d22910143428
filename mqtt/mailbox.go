package mqtt

import "time"

// mailbox holds the latest unsent value of one telemetry topic. A newer value
// replaces an unsent older one, so memory is bounded by one payload per topic
// and the producer never waits.
type mailbox struct {
	topic    string        // full topic
	interval time.Duration // minimum time between two sends
	payload  []byte        // latest value (kept after sending, for republishing)
	pending  bool          // payload has not been sent yet
	lastSent time.Time
}

// put stores a new value and reports whether it replaced an unsent one.
func (m *mailbox) put(payload []byte) (replaced bool) {
	replaced = m.pending
	m.payload = payload
	m.pending = true
	return replaced
}

// dueAt is when the pending value may be sent (zero time: now).
func (m *mailbox) dueAt() time.Time {
	if m.lastSent.IsZero() {
		return time.Time{}
	}
	return m.lastSent.Add(m.interval)
}

// due reports whether a value is waiting and its rate limit allows sending.
func (m *mailbox) due(now time.Time) bool {
	return m.pending && !now.Before(m.dueAt())
}

// take claims the pending value for sending. A value put while it is in
// flight is a new one, not a replacement: the taken value is still sent.
func (m *mailbox) take() []byte {
	m.pending = false
	return m.payload
}

// markSent starts the rate-limit interval after a successful send.
func (m *mailbox) markSent(now time.Time) { m.lastSent = now }

// sendFailed gives a taken value back unless a newer one arrived meanwhile.
func (m *mailbox) sendFailed(payload []byte) {
	if sameSlice(m.payload, payload) {
		m.pending = true
	}
}

// resend makes the latest value (if any) pending and immediately due: used
// after a reconnect, when the broker's subscribers may have missed it.
func (m *mailbox) resend() {
	if m.payload != nil {
		m.pending = true
		m.lastSent = time.Time{}
	}
}

func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// resultQueue is a bounded FIFO of command acknowledgements. Results are not
// latest-value (each command deserves its answer), but the queue is bounded:
// when full, the oldest is dropped and counted.
type resultQueue struct {
	items [][]byte
	limit int
}

func (q *resultQueue) push(b []byte) (dropped bool) {
	if len(q.items) >= q.limit {
		copy(q.items, q.items[1:])
		q.items = q.items[:len(q.items)-1]
		dropped = true
	}
	q.items = append(q.items, b)
	return dropped
}

func (q *resultQueue) pop() ([]byte, bool) {
	if len(q.items) == 0 {
		return nil, false
	}
	b := q.items[0]
	copy(q.items, q.items[1:])
	q.items[len(q.items)-1] = nil
	q.items = q.items[:len(q.items)-1]
	return b, true
}

// unpop puts a result that could not be sent back at the head.
func (q *resultQueue) unpop(b []byte) {
	if len(q.items) >= q.limit {
		return // a newer result took the place; this one is lost (counted by caller)
	}
	q.items = append(q.items, nil)
	copy(q.items[1:], q.items)
	q.items[0] = b
}
