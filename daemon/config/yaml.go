package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	Where string // "bnnd.yaml:12", "flag --threads", or "" for a default value
	Key   string // key path, e.g. "training.gamma"
	Msg   string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Where != "" {
		b.WriteString(p.Where)
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a configuration, in file order
// for syntax and type problems, then in key order for out-of-range values.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// maxConfigSize bounds what Load reads: a configuration is a few KiB;
// anything bigger is a wrong file.
const maxConfigSize = 1 << 20

// Load reads the YAML file at path over the defaults and validates
// the result. Every problem (unknown key, wrong type, bad value) is reported
// in one *Error naming the key and line.
func Load(path string) (*Config, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	cfg, parseErr := Parse(path, data)
	if err := joinConfigErrors(parseErr, validateIfParsed(cfg)); err != nil {
		return nil, err
	}
	return cfg, nil
}

func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes; is this the right file?", path, maxConfigSize)
	}
	return data, nil
}

// validateIfParsed validates cfg unless the YAML could not be parsed at all.
// Keys whose values were rejected by the parser keep their defaults, so
// validating after a partial parse reports range errors of the other keys
// in the same run.
func validateIfParsed(cfg *Config) error {
	if cfg == nil {
		return nil
	}
	return cfg.Validate()
}

// joinConfigErrors concatenates the problems of several *Error; any
// other error is returned as is.
func joinConfigErrors(errs ...error) error {
	var all []Problem
	for _, err := range errs {
		if err == nil {
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) {
			return err
		}
		all = append(all, ce.Problems...)
	}
	if len(all) == 0 {
		return nil
	}
	return &Error{Problems: all}
}

// Parse decodes YAML over Default without validating value ranges
// (Validate does that, after flags are applied). name is used in error
// positions. Syntax errors, unknown keys and wrong types are returned as a
// *Error; the returned config is nil only when the text is not YAML at
// all, otherwise rejected keys keep their defaults.
func Parse(name string, data []byte) (*Config, error) {
	cfg := Default()
	cfg.origin = map[string]string{}
	d := &decoder{file: name, cfg: cfg}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil // an empty file: all defaults
		}
		return nil, &Error{Problems: []Problem{{Where: name, Msg: yamlSyntaxMessage(err)}}}
	}
	var second yaml.Node
	if err := dec.Decode(&second); err == nil {
		d.problems = append(d.problems, Problem{Where: d.at(&second), Msg: "a second YAML document (---) is not allowed; put everything in one"})
	} else if !errors.Is(err, io.EOF) {
		d.problems = append(d.problems, Problem{Where: name, Msg: yamlSyntaxMessage(err)})
	}

	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return cfg, d.err()
		}
		root = root.Content[0]
	}
	if isNull(root) {
		return cfg, d.err() // a file holding only comments
	}
	d.value(root, reflect.ValueOf(cfg).Elem(), "")
	return cfg, d.err()
}

// yamlSyntaxMessage turns "yaml: line 3: mapping values are not allowed in
// this context" into "line 3: mapping values ...".
func yamlSyntaxMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return "invalid YAML: " + msg
}

type decoder struct {
	file     string
	cfg      *Config
	problems []Problem
}

func (d *decoder) at(n *yaml.Node) string {
	return fmt.Sprintf("%s:%d", d.file, n.Line)
}

func (d *decoder) bad(n *yaml.Node, key, format string, args ...any) {
	d.problems = append(d.problems, Problem{Where: d.at(n), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) err() error {
	if len(d.problems) == 0 {
		return nil
	}
	return &Error{Problems: d.problems}
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

// resolve follows aliases (*anchor) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!int":
			return "the integer " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		case "!!null":
			return "null"
		}
		return fmt.Sprintf("%s %q", n.ShortTag(), n.Value)
	}
	return "an unexpected node"
}

// value decodes n into v; key is the dotted path used in messages. A null
// value (a key with nothing after it) keeps the default.
func (d *decoder) value(n *yaml.Node, v reflect.Value, key string) {
	n = resolve(n)
	if n == nil || n.Kind == yaml.AliasNode {
		d.problems = append(d.problems, Problem{Where: d.file, Key: key, Msg: "alias chain too long"})
		return
	}
	if isNull(n) {
		return
	}
	switch {
	case v.Type() == durationType:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			hint := ""
			if n.ShortTag() == "!!int" || n.ShortTag() == "!!float" {
				hint = " (add a unit: ns, us, ms, s, m, h)"
			}
			d.bad(n, key, "expected a duration such as 10m or 1.5s, got %s%s", describe(n), hint)
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.bad(n, key, "expected a duration such as 10m or 1.5s, got %q", n.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	case v.Type() == byteSizeType:
		size, err := parseByteSizeNode(n)
		if err != nil {
			d.bad(n, key, "%v", err)
			return
		}
		v.SetInt(int64(size))
		return
	}

	switch v.Kind() {
	case reflect.Struct:
		d.mapping(n, v, key)
	case reflect.String:
		switch {
		case n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!str" || n.ShortTag() == "!!int" || n.ShortTag() == "!!float"):
			v.SetString(n.Value)
		default:
			d.bad(n, key, "expected a string, got %s", describe(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.bad(n, key, "expected true or false, got %s", describe(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.bad(n, key, "expected true or false, got %q", n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.bad(n, key, "expected an integer, got %s", describe(n))
			return
		}
		var i int64
		if err := n.Decode(&i); err != nil {
			d.bad(n, key, "expected an integer that fits in 64 bits, got %s", n.Value)
			return
		}
		if v.OverflowInt(i) {
			d.bad(n, key, "integer %s is too large", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") {
			d.bad(n, key, "expected a number, got %s", describe(n))
			return
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			d.bad(n, key, "expected a number, got %s", n.Value)
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.bad(n, key, "expected a finite number, got %s", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			d.structList(n, v, key)
			return
		}
		if v.Type().Elem().Kind() != reflect.String {
			panic("daemon: config field type not supported: " + v.Type().String())
		}
		if n.Kind != yaml.SequenceNode {
			d.bad(n, key, "expected a list such as [a, b], got %s", describe(n))
			return
		}
		out := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			itemKey := fmt.Sprintf("%s[%d]", key, i)
			item = resolve(item)
			if item == nil || item.Kind != yaml.ScalarNode || isNull(item) {
				if item == nil {
					item = n
				}
				d.bad(item, itemKey, "expected a string, got %s", describe(item))
				continue
			}
			d.cfg.setOrigin(itemKey, d.at(item))
			out = append(out, item.Value)
		}
		v.Set(reflect.ValueOf(out))
	default:
		panic("daemon: config field type not supported: " + v.Type().String())
	}
}

// structList decodes a list of mappings (embedded_broker.users), each item
// over a zero value of the element type.
func (d *decoder) structList(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.SequenceNode {
		d.bad(n, key, "expected a list of mappings such as [{username: a, ...}], got %s", describe(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		itemKey := fmt.Sprintf("%s[%d]", key, i)
		elem := reflect.New(v.Type().Elem()).Elem()
		if r := resolve(item); r != nil && r.Kind == yaml.MappingNode {
			d.cfg.setOrigin(itemKey, d.at(r))
		}
		d.value(item, elem, itemKey)
		out = reflect.Append(out, elem)
	}
	v.Set(out)
}

// field is one yaml key of a config struct.
type field struct {
	name  string
	index int
	doc   string
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		out = append(out, field{name: name, index: i, doc: f.Tag.Get("doc")})
	}
	return out
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		what := "the configuration"
		if key != "" {
			what = "this section"
		}
		d.bad(n, key, "%s must be a mapping of keys to values, got %s", what, describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			d.bad(n.Content[i], key, "keys must be plain names, got %s", describe(n.Content[i]))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.bad(k, key, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		path := k.Value
		if key != "" {
			path = key + "." + k.Value
		}
		if line, dup := seen[k.Value]; dup {
			d.bad(k, path, "duplicate key (first set on line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		var f *field
		for j := range fields {
			if fields[j].name == k.Value {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			names := make([]string, len(fields))
			for j, fl := range fields {
				names[j] = fl.name
			}
			d.bad(k, path, "unknown key (known keys here: %s)", strings.Join(names, ", "))
			continue
		}
		fv := v.Field(f.index)
		if fv.Kind() != reflect.Struct || fv.Type() == durationType {
			d.cfg.setOrigin(path, d.at(k))
		}
		d.value(val, fv, path)
	}
}

// exampleHeader opens configs/bnnd.yaml and 'bnnd config defaults'.
const exampleHeader = `# bnnd configuration: every key with its default value (this file equals the
# built-in defaults; a test checks it). Print it with 'bnnd config defaults', check a
# file with 'bnnd config check FILE'. Flags of 'bnnd run' override these values.
# A key left empty (key:) or left out keeps its default.

`

// Example is the text of configs/bnnd.yaml: the defaults, every key
// with a comment.
func Example() []byte {
	b, err := Default().MarshalYAML()
	if err != nil {
		panic("daemon: the default configuration does not encode: " + err.Error())
	}
	return append([]byte(exampleHeader), b...)
}

// MarshalYAML renders c as commented YAML: every key, its value and the doc
// comment. For Default() this is the text of configs/bnnd.yaml.
func (c *Config) MarshalYAML() ([]byte, error) {
	root := encodeValue(reflect.ValueOf(c).Elem())
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	// A blank line before each top-level section keeps the file readable.
	var out bytes.Buffer
	lines := strings.SplitAfter(buf.String(), "\n")
	for i, line := range lines {
		if i > 0 && strings.HasPrefix(line, "# ") && !strings.HasPrefix(lines[i-1], "#") {
			out.WriteString("\n")
		}
		out.WriteString(line)
	}
	return out.Bytes(), nil
}

func encodeValue(v reflect.Value) *yaml.Node {
	scalar := func(tag, value string) *yaml.Node {
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
		if tag == "!!str" && (value == "" || needsQuotes(value)) {
			n.Style = yaml.DoubleQuotedStyle
		}
		return n
	}
	switch {
	case v.Type() == durationType:
		return scalar("!!str", fmtDuration(time.Duration(v.Int())))
	case v.Type() == byteSizeType:
		return scalar("!!str", ByteSize(v.Int()).String())
	}
	switch v.Kind() {
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range fieldsOf(v.Type()) {
			k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.name, HeadComment: f.doc}
			m.Content = append(m.Content, k, encodeValue(v.Field(f.index)))
		}
		return m
	case reflect.String:
		return scalar("!!str", v.String())
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int64:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case reflect.Float64:
		return scalar("!!float", strconv.FormatFloat(v.Float(), 'g', -1, 64))
	case reflect.Slice:
		s := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := 0; i < v.Len(); i++ {
			if v.Index(i).Kind() == reflect.Struct {
				s.Style = 0 // a list of mappings reads better one item per block
				s.Content = append(s.Content, encodeValue(v.Index(i)))
				continue
			}
			s.Content = append(s.Content, scalar("!!str", v.Index(i).String()))
		}
		return s
	}
	panic("daemon: config field type not supported: " + v.Type().String())
}

// needsQuotes reports whether a plain scalar would not read back as the same
// string (it would resolve to a number, bool or null).
func needsQuotes(s string) bool {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil || len(n.Content) != 1 {
		return true
	}
	c := n.Content[0]
	return c.Kind != yaml.ScalarNode || c.ShortTag() != "!!str" || c.Value != s
}

// fmtDuration writes 10m rather than 10m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ByteSize is a size in bytes, written in YAML as an integer or with a unit:
// B, KiB, MiB, GiB (powers of 1024) or kB, MB, GB (powers of 1000).
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"KB", 1e3}, {"B", 1},
}

// String writes the size with the largest binary unit that divides it.
func (b ByteSize) String() string {
	for _, u := range byteUnits[:3] {
		if b != 0 && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// ParseByteSize parses "4MiB", "512 KiB", "1000000" (bytes) and the like.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("expected a size such as 4MiB, 512KiB or a number of bytes, got %q", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mult), nil
}

func parseByteSizeNode(n *yaml.Node) (ByteSize, error) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		var i int64
		if err := n.Decode(&i); err != nil || i < 0 {
			return 0, fmt.Errorf("expected a non-negative number of bytes, got %s", n.Value)
		}
		return ByteSize(i), nil
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return 0, fmt.Errorf("expected a size such as 4MiB, got %s", describe(n))
	}
	return ParseByteSize(n.Value)
}

// leafKeys lists every key path of the configuration (for tests and for the
// documentation check of configs/bnnd.yaml).
func leafKeys() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for _, f := range fieldsOf(t) {
			ft := t.Field(f.index).Type
			path := prefix + f.name
			if ft.Kind() == reflect.Struct && ft != durationType {
				walk(ft, path+".")
				continue
			}
			out = append(out, path)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	sort.Strings(out)
	return out
}
