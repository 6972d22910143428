package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Command names, each received on <prefix>/<device-id>/cmd/<name>.
const (
	CmdLabel      = "label"      // payload: a class name, a class index, "none", or {"label":NAME,"for":DURATION}
	CmdPause      = "pause"      // payload ignored (Home Assistant sends "PRESS")
	CmdResume     = "resume"     // payload ignored
	CmdCheckpoint = "checkpoint" // payload ignored
	CmdReset      = "reset"      // payload: the device id, as confirmation
	CmdMomentum   = "momentum"   // payload: encodings, comma separated (one, or one per layer)

	// LabelNone is the label payload that clears the current label.
	LabelNone = "none"
	// NoLabel is Command.Label for the "none" payload.
	NoLabel = -1

	resultTopic = "result" // cmd/result carries the acknowledgements
)

// CommandNames lists every command in a fixed order.
var CommandNames = []string{CmdLabel, CmdPause, CmdResume, CmdCheckpoint, CmdReset, CmdMomentum}

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
	// For CmdMomentum: the encodings as sent, syntax checked (eXmY[bZ][s],
	// fp32, fp16, bf16 or auto). The handler checks they are usable.
	Formats []string
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

// formatPattern is the syntax of one encoding spec (DESIGN.md §4).
var formatPattern = regexp.MustCompile(`^(?:fp32|fp16|bf16|auto|e[0-9]{1,2}m[0-9]{1,2}(?:b-?[0-9]{1,4})?s?)$`)

// maxFormats bounds the per-layer list of the momentum command.
const maxFormats = 64

// commandPolicy is what the dispatcher needs to validate a command.
type commandPolicy struct {
	deviceID   string
	maxPayload int
	disabled   map[string]bool
	classes    func() []string
	log        *slog.Logger
}

// parseCommand validates a command payload. Errors are meant for the user
// reading cmd/result: they say what was wrong and what was expected.
func (p *commandPolicy) parseCommand(name string, payload []byte) (Command, error) {
	cmd := Command{Name: name, Label: NoLabel}
	if !isCommand(name) {
		return cmd, fmt.Errorf("unknown command %q (known: %s)", name, strings.Join(CommandNames, ", "))
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
		if text != p.deviceID {
			return cmd, fmt.Errorf("reset: payload must be the device id %q to confirm, got %q", p.deviceID, truncate(text, 64))
		}
	case CmdMomentum:
		if text == "" {
			return cmd, errors.New("momentum: empty payload, want an encoding such as e4m3b28s, fp16 or auto (comma separated for one per layer)")
		}
		parts := strings.Split(text, ",")
		if len(parts) > maxFormats {
			return cmd, fmt.Errorf("momentum: %d encodings, at most %d", len(parts), maxFormats)
		}
		for i, f := range parts {
			f = strings.TrimSpace(f)
			if !formatPattern.MatchString(f) {
				return cmd, fmt.Errorf("momentum: encoding %d %q: want eXmY[bZ][s] (e.g. e4m3b28s), fp32, fp16, bf16 or auto", i+1, truncate(f, 32))
			}
			parts[i] = f
		}
		cmd.Formats = parts
	}
	return cmd, nil
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
	res.Command = truncate(name, 64)
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
