package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Command names, each received on <prefix>/<device-id>/cmd/<name>.
const (
	CmdLabel      = "label"      // payload: a class name, a class index, or "none"
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

	// For CmdLabel: the class index (NoLabel for "none") and its name
	// ("none", or "" when no class names are configured).
	Label     int
	LabelName string
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
	if text == "" {
		return cmd, errors.New("label: empty payload, want a class name, a class index or \"none\"")
	}
	if strings.EqualFold(text, LabelNone) {
		cmd.LabelName = LabelNone
		return cmd, nil
	}
	classes := p.classes()
	for i, c := range classes {
		if c == text {
			cmd.Label, cmd.LabelName = i, c
			return cmd, nil
		}
	}
	if i, err := strconv.Atoi(text); err == nil {
		if len(classes) > 0 && (i < 0 || i >= len(classes)) {
			return cmd, fmt.Errorf("label: class index %d out of range [0, %d)", i, len(classes))
		}
		if i < 0 {
			return cmd, fmt.Errorf("label: class index %d is negative", i)
		}
		cmd.Label = i
		if len(classes) > 0 {
			cmd.LabelName = classes[i]
		}
		return cmd, nil
	}
	if len(classes) == 0 {
		return cmd, fmt.Errorf("label: %q is not a class index (no class names are configured) or \"none\"", truncate(text, 64))
	}
	return cmd, fmt.Errorf("label: unknown class %q (known: %s, or an index, or \"none\")", truncate(text, 64), truncate(strings.Join(classes, ", "), 256))
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
