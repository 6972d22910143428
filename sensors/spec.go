package sensors

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// listOptions take comma-separated values: "cols=ax,ay,az".
var listOptions = map[string]bool{"cols": true}

// spec is a parsed "KIND[:ARG][,key=value...]" string.
type spec struct {
	raw  string
	kind string
	arg  string
	opts map[string]string
	used map[string]bool
}

// parseSpec splits a spec. The argument runs from the first ':' to the first
// ',' after it, so a CSV glob or a directory cannot contain a comma.
func parseSpec(raw string) (*spec, error) {
	s := &spec{raw: raw, opts: map[string]string{}, used: map[string]bool{}}
	head, rest, _ := strings.Cut(raw, ",")
	kind, arg, hasArg := strings.Cut(head, ":")
	s.kind = strings.TrimSpace(kind)
	s.arg = arg
	if s.kind == "" {
		return nil, fmt.Errorf("sensors: spec %q: missing source kind before ':' or ','", raw)
	}
	if hasArg && strings.TrimSpace(arg) != arg {
		return nil, fmt.Errorf("sensors: spec %q: argument %q has surrounding spaces", raw, arg)
	}
	if strings.Contains(raw, ",") {
		last := ""
		for _, kv := range strings.Split(rest, ",") {
			k, v, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			if !ok && listOptions[last] && strings.TrimSpace(kv) != "" {
				// cols=ax,ay,az: a bare item continues the list option before it.
				s.opts[last] += "," + strings.TrimSpace(kv)
				continue
			}
			if !ok || k == "" {
				return nil, fmt.Errorf("sensors: spec %q: option %q is not key=value", raw, kv)
			}
			last = k
			if _, dup := s.opts[k]; dup {
				// "cols" lists are written cols=a,b,c: the parts without '='
				// are handled above as errors, so a repeated key is a mistake.
				return nil, fmt.Errorf("sensors: spec %q: option %q given twice", raw, k)
			}
			s.opts[k] = strings.TrimSpace(v)
		}
	}
	return s, nil
}

func (s *spec) errorf(format string, args ...any) error {
	return fmt.Errorf("sensors: spec %q: %s", s.raw, fmt.Sprintf(format, args...))
}

// str returns option key (and marks it used).
func (s *spec) str(key string) (string, bool) {
	v, ok := s.opts[key]
	if ok {
		s.used[key] = true
	}
	return v, ok
}

// intOpt parses an integer option within [min, max]; def when absent.
func (s *spec) intOpt(key string, def, min, max int64) (int64, error) {
	v, ok := s.str(key)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil {
		return 0, s.errorf("option %s=%q is not an integer", key, v)
	}
	if n < min || n > max {
		return 0, s.errorf("option %s=%d out of range [%d, %d]", key, n, min, max)
	}
	return n, nil
}

// floatOpt parses a float option within [min, max]; def when absent.
func (s *spec) floatOpt(key string, def, min, max float64) (float64, error) {
	v, ok := s.str(key)
	if !ok {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f != f {
		return 0, s.errorf("option %s=%q is not a number", key, v)
	}
	if f < min || f > max {
		return 0, s.errorf("option %s=%g out of range [%g, %g]", key, f, min, max)
	}
	return f, nil
}

// checkUsed reports options that the source kind does not know.
func (s *spec) checkUsed() error {
	var unknown []string
	for k := range s.opts {
		if !s.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return s.errorf("unknown option(s) %s for source %q", strings.Join(unknown, ", "), s.kind)
}

// Default window and hop (in samples) for time series when neither the spec
// nor LoadOptions give them.
const (
	DefaultWindow = 64
	DefaultHop    = 32
)

// maxWindow bounds window lengths so a typo cannot ask for gigabytes.
const maxWindow = 1 << 16

// windowing resolves window and hop from the spec and the options; a value
// in both that differs is an error.
func (s *spec) windowing(opt LoadOptions) (window, hop int, err error) {
	w, err := s.intOpt("window", 0, 1, maxWindow)
	if err != nil {
		return 0, 0, err
	}
	h, err := s.intOpt("hop", 0, 1, maxWindow)
	if err != nil {
		return 0, 0, err
	}
	if opt.Window < 0 || opt.Hop < 0 || opt.Window > maxWindow || opt.Hop > maxWindow {
		return 0, 0, s.errorf("window %d / hop %d out of range [1, %d]", opt.Window, opt.Hop, maxWindow)
	}
	window, hop = int(w), int(h)
	if opt.Window != 0 {
		if window != 0 && window != opt.Window {
			return 0, 0, s.errorf("window=%d in the spec but %d in the options", window, opt.Window)
		}
		window = opt.Window
	}
	if opt.Hop != 0 {
		if hop != 0 && hop != opt.Hop {
			return 0, 0, s.errorf("hop=%d in the spec but %d in the options", hop, opt.Hop)
		}
		hop = opt.Hop
	}
	if window == 0 {
		window = DefaultWindow
	}
	if hop == 0 {
		hop = window / 2
		if window == DefaultWindow {
			hop = DefaultHop
		}
		if hop < 1 {
			hop = 1
		}
	}
	return window, hop, nil
}

// windowedSpec reads the options of a time-series source in the order all
// of them share, so their errors come first to last alike: the source's own
// options (parse), window and hop, the options that depend on the window
// (after, nil if none), then any option nobody read, so that a misspelt
// option is an error for every source.
func windowedSpec[P any](s *spec, opt LoadOptions, parse func(*spec) (P, error), after func(p *P, window, hop int) error) (p P, window, hop int, err error) {
	if p, err = parse(s); err != nil {
		return p, 0, 0, err
	}
	if window, hop, err = s.windowing(opt); err != nil {
		return p, 0, 0, err
	}
	if after != nil {
		if err = after(&p, window, hop); err != nil {
			return p, 0, 0, err
		}
	}
	if err = s.checkUsed(); err != nil {
		return p, 0, 0, err
	}
	return p, window, hop, nil
}
