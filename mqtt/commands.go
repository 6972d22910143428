package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bnnd/bnnd/fp"
)

// Command names, each received on <prefix>/<device-id>/cmd/<name>.
const (
	CmdLabel      = "label"      // payload: a class name, a class index, "none", or {"label":NAME,"for":DURATION}
	CmdPause      = "pause"      // payload ignored (Home Assistant sends "PRESS")
	CmdResume     = "resume"     // payload ignored
	CmdCheckpoint = "checkpoint" // payload ignored
	CmdReset      = "reset"      // payload: "request", then the code answered on cmd/result (or the reset token)
	CmdMomentum   = "momentum"   // payload: encodings, comma separated (one, or one per layer); a trailing ! forces one

	// LabelNone is the label payload that clears the current label.
	LabelNone = "none"
	// NoLabel is Command.Label for the "none" payload.
	NoLabel = -1

	resultTopic = "result" // cmd/result carries the acknowledgements
)

// CommandNames lists every command in a fixed order.
var CommandNames = []string{CmdLabel, CmdPause, CmdResume, CmdCheckpoint, CmdReset, CmdMomentum}

// CostlyCommands write to the SD card or rebuild training state; each is
// rate-limited (Config.CostlyBurst, CostlyInterval).
var CostlyCommands = []string{CmdCheckpoint, CmdReset, CmdMomentum}

// resetRequest is the reset payload that asks for a confirmation code.
const resetRequest = "request"

// maxNameInReply bounds how much of an unknown command name is echoed in
// results and logs: the name is whatever a client put in the topic.
const maxNameInReply = 64

func isCommand(name string) bool {
	for _, n := range CommandNames {
		if n == name {
			return true
		}
	}
	return false
}

// Command is one validated command handed to the CommandHandler.
type Command struct {
	Name    string // one of CommandNames
	Payload string // the payload, surrounding white space removed

	// For CmdLabel: the name ("none" clears the label; a name that is not
	// a class yet may become one: the handler decides), its class index
	// when it is a class already (else NoLabel), and how long it holds (0:
	// until the next label).
	Label     int
	LabelName string
	LabelHold time.Duration
	// For CmdMomentum: the encodings, each accepted by fp.ParseFormat (or
	// auto), without the ! that forces one. Unforced ones are inside the
	// encoding search's range (see checkSearchRange). The handler checks
	// they fit the model.
	Formats []string
	Forced  bool // some format was forced with a trailing !
}

// CommandHandler carries out one command. It runs on the command dispatcher
// goroutine, never on the MQTT client's, with ctx bounded by
// Config.CommandTimeout. The result (any JSON-marshalable value, or nil)
// and the error are acknowledged on cmd/result.
type CommandHandler func(ctx context.Context, cmd Command) (result any, err error)

// Result is the JSON acknowledgement published on cmd/result.
type Result struct {
	Command string    `json:"command"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Result  any       `json:"result,omitempty"`
	Time    time.Time `json:"time"`
}

// maxFormats bounds the per-layer list of the momentum command.
const maxFormats = 64

// The encoding search's default code widths (fp.SearchOptions): a format
// outside them was never ranked against the momenta, so the momentum
// command asks for a ! to use one.
const (
	searchMinBits = 4
	searchMaxBits = 16
)

// commandPolicy is what the dispatcher needs to validate a command. It is
// used by the dispatcher goroutine only.
type commandPolicy struct {
	maxPayload int
	disabled   map[string]bool
	classes    func() []string
	log        *slog.Logger

	resetToken string // "" : codes only
	resetCode  string // the code answered to the last reset request
	resetUntil time.Time

	burst    int // <0: costly commands are not limited
	interval time.Duration
	buckets  map[string]*bucket
}

// bucket is a token bucket: tokens refill at one per interval up to burst.
type bucket struct {
	tokens float64
	at     time.Time
}

// parseCommand validates a command payload. Errors are meant for the user
// reading cmd/result: they say what was wrong and what was expected.
func (p *commandPolicy) parseCommand(name string, payload []byte) (Command, error) {
	cmd := Command{Name: name, Label: NoLabel}
	if !isCommand(name) {
		return cmd, fmt.Errorf("unknown command %q (known: %s)", truncate(name, maxNameInReply), strings.Join(CommandNames, ", "))
	}
	if p.disabled[name] {
		return cmd, fmt.Errorf("command %q is disabled by configuration", name)
	}
	if len(payload) > p.maxPayload {
		return cmd, fmt.Errorf("%s: payload of %d bytes exceeds the limit of %d bytes", name, len(payload), p.maxPayload)
	}
	if !utf8.Valid(payload) {
		return cmd, fmt.Errorf("%s: payload is not valid UTF-8", name)
	}
	text := strings.TrimSpace(string(payload))
	cmd.Payload = text
	switch name {
	case CmdLabel:
		return p.parseLabel(cmd, text)
	case CmdReset:
		if text == "" {
			return cmd, errors.New(resetHelp)
		}
	case CmdMomentum:
		return parseMomentum(cmd, text)
	}
	return cmd, nil
}

const resetHelp = `reset: send "request" on cmd/reset, then the code answered on cmd/result within 30s ` +
	`(or the token of mqtt.commands.reset_token_file)`

func parseMomentum(cmd Command, text string) (Command, error) {
	if text == "" {
		return cmd, errors.New("momentum: empty payload, want an encoding such as e4m3b28s, fp16 or auto (comma separated for one per layer)")
	}
	parts := strings.Split(text, ",")
	if len(parts) > maxFormats {
		return cmd, fmt.Errorf("momentum: %d encodings, at most %d", len(parts), maxFormats)
	}
	for i, name := range parts {
		name = strings.TrimSpace(name)
		forced := strings.HasSuffix(name, "!")
		name = strings.TrimSuffix(name, "!")
		parts[i] = name
		if name == "auto" {
			continue
		}
		f, err := fp.ParseFormat(name)
		if err != nil {
			return cmd, fmt.Errorf("momentum: encoding %d %q: %v", i+1, truncate(name, 32), err)
		}
		if forced {
			cmd.Forced = true
		} else if err := checkSearchRange(f); err != nil {
			return cmd, fmt.Errorf("momentum: encoding %d %s: %v; append ! (%s!) to use it anyway", i+1, name, err, name)
		}
	}
	cmd.Formats = parts
	return cmd, nil
}

// checkSearchRange refuses what the encoding search would never pick:
// codes narrower or wider than its range, and formats without mantissa
// bits, which have no subnormals to hold the small momenta (every step a
// power of two) — e1m0 is both. fp32, the uncompressed reference, is
// always allowed.
func checkSearchRange(f fp.Format) error {
	if f.Exp == fp.FP32.Exp && f.Mant == fp.FP32.Mant && f.Bias == fp.FP32.Bias && f.IEEE {
		return nil
	}
	if b := f.Bits(); b < searchMinBits || b > searchMaxBits {
		return fmt.Errorf("%d-bit codes are outside the encoding search's range of %d to %d bits", b, searchMinBits, searchMaxBits)
	}
	if f.Mant == 0 {
		return errors.New("no mantissa bits: no subnormal range for the small momenta")
	}
	return nil
}

// confirmReset decides a reset payload: "request" gets a fresh one-time
// code as the answer; the current code (before it expires) or the token
// lets the reset run (nil, nil).
func (p *commandPolicy) confirmReset(text string, now time.Time) (answer any, err error) {
	if text == resetRequest {
		raw := make([]byte, 16)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("reset: no code: %w", err)
		}
		p.resetCode, p.resetUntil = hex.EncodeToString(raw), now.Add(ResetNonceTTL)
		return map[string]any{
			"confirm_with": p.resetCode,
			"expires":      p.resetUntil,
			"how":          fmt.Sprintf("publish this code on cmd/reset within %v to reset the model; it works once", ResetNonceTTL),
		}, nil
	}
	if p.resetToken != "" && subtle.ConstantTimeCompare([]byte(text), []byte(p.resetToken)) == 1 {
		return nil, nil
	}
	if p.resetCode != "" && subtle.ConstantTimeCompare([]byte(text), []byte(p.resetCode)) == 1 {
		p.resetCode = ""
		if now.After(p.resetUntil) {
			return nil, fmt.Errorf("reset: the code has expired (valid %v); send %q for a new one", ResetNonceTTL, resetRequest)
		}
		return nil, nil
	}
	return nil, errors.New(resetHelp)
}

// allow takes a token from a costly command's bucket, or says when the
// next one comes.
func (p *commandPolicy) allow(name string, now time.Time) error {
	costly := false
	for _, n := range CostlyCommands {
		costly = costly || n == name
	}
	if !costly || p.burst < 0 {
		return nil
	}
	if p.buckets == nil {
		p.buckets = map[string]*bucket{}
	}
	b := p.buckets[name]
	if b == nil {
		b = &bucket{tokens: float64(p.burst), at: now}
		p.buckets[name] = b
	}
	if now.After(b.at) {
		b.tokens = min(float64(p.burst), b.tokens+float64(now.Sub(b.at))/float64(p.interval))
		b.at = now
	}
	if b.tokens < 1 {
		wait := time.Duration((1 - b.tokens) * float64(p.interval)).Round(time.Second)
		return fmt.Errorf("%s: rate limited: at most %d in a row, then one every %v; try again in %v", name, p.burst, p.interval, max(wait, time.Second))
	}
	b.tokens--
	return nil
}

func (p *commandPolicy) parseLabel(cmd Command, text string) (Command, error) {
	if strings.HasPrefix(text, "{") {
		var req struct {
			Label *string         `json:"label"`
			For   json.RawMessage `json:"for"`
		}
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return cmd, fmt.Errorf(`label: JSON payload: %v (want {"label":"wave","for":"10s"})`, err)
		}
		if req.Label == nil {
			return cmd, errors.New(`label: JSON payload has no "label" (want {"label":"wave","for":"10s"})`)
		}
		text = strings.TrimSpace(*req.Label)
		if req.For != nil {
			hold, err := parseHold(req.For)
			if err != nil {
				return cmd, fmt.Errorf("label: \"for\": %w", err)
			}
			cmd.LabelHold = hold
		}
	}
	if text == "" {
		return cmd, errors.New("label: empty label, want a class name, a class index or \"none\"")
	}
	if strings.EqualFold(text, LabelNone) {
		if cmd.LabelHold > 0 {
			return cmd, errors.New("label: \"for\" needs a label to hold; \"none\" holds none")
		}
		cmd.LabelName = LabelNone
		return cmd, nil
	}
	cmd.LabelName = text
	classes := p.classes()
	if i := slices.Index(classes, text); i >= 0 {
		cmd.Label = i
		return cmd, nil
	}
	if i, err := strconv.Atoi(text); err == nil {
		if i < 0 || i >= len(classes) {
			return cmd, fmt.Errorf("label: class index %d out of range [0, %d)", i, len(classes))
		}
		cmd.Label, cmd.LabelName = i, classes[i]
	}
	return cmd, nil
}

// parseHold reads the "for" of a label: a Go duration string ("10s",
// "1m30s") or a number of seconds.
func parseHold(raw json.RawMessage) (time.Duration, error) {
	var d time.Duration
	var text string
	var seconds float64
	switch {
	case json.Unmarshal(raw, &text) == nil:
		var err error
		if d, err = time.ParseDuration(text); err != nil {
			return 0, fmt.Errorf("%q is not a duration such as \"10s\" or \"2m\"", truncate(text, 32))
		}
	case json.Unmarshal(raw, &seconds) == nil:
		if !(seconds > 0 && seconds < float64(math.MaxInt64/int64(time.Second))) {
			return 0, fmt.Errorf("%g seconds: want a positive number of seconds", seconds)
		}
		d = time.Duration(seconds * float64(time.Second))
	default:
		return 0, fmt.Errorf("%s is neither a duration string nor a number of seconds", truncate(string(raw), 32))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%v: want a positive duration", d)
	}
	return d, nil
}

// execute validates and runs one command and always returns a result: a
// handler panic is recovered here as a last line of defence.
func (p *commandPolicy) execute(ctx context.Context, handler CommandHandler, timeout time.Duration, name string, payload []byte, now func() time.Time) (res Result) {
	res.Command = truncate(name, maxNameInReply)
	defer func() {
		if r := recover(); r != nil {
			res.OK, res.Result = false, nil
			res.Error = fmt.Sprintf("%s: internal error: %v", res.Command, r)
			res.Time = now()
			if p.log != nil {
				p.log.Error("mqtt: command panicked", "command", res.Command, "panic", r, "stack", string(debug.Stack()))
			}
		}
	}()
	cmd, err := p.parseCommand(name, payload)
	if err == nil && name == CmdReset {
		var answer any
		if answer, err = p.confirmReset(cmd.Payload, now()); answer != nil {
			res.OK, res.Result, res.Time = true, answer, now()
			return res
		}
	}
	if err == nil {
		err = p.allow(name, now())
	}
	if err == nil && handler == nil {
		err = fmt.Errorf("%s: no command handler is installed", name)
	}
	if err == nil {
		hctx, cancel := context.WithTimeout(ctx, timeout)
		var out any
		out, err = handler(hctx, cmd)
		cancel()
		if err == nil {
			if _, merr := json.Marshal(out); merr != nil {
				err = fmt.Errorf("%s: result cannot be encoded as JSON: %w", name, merr)
			} else {
				res.Result = out
			}
		} else if !strings.HasPrefix(err.Error(), name+":") {
			err = fmt.Errorf("%s: %w", name, err)
		}
	}
	res.OK = err == nil
	if err != nil {
		res.Error = err.Error()
	}
	res.Time = now()
	return res
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// cut on a rune boundary
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
