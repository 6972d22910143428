// Package implset keeps the implementations of a set of kernels that are
// compiled into a binary and chooses the one in use, for package kernels
// (BNND_KERNELS) and package fp's Bop step (BNND_STEP).
//
// The portable implementation is always there, first; architecture files
// add theirs from init() through Register, least preferred first, and
// after each registration the choice is made again, so the order of init()
// functions across files does not matter. The active implementation is the
// one the environment variable names if set, else the last available one
// (the preferred). A variable naming an unknown or unavailable
// implementation keeps the preferred one and records an error for
// InitError.
package implset

import (
	"fmt"
	"os"
	"strings"
)

// Entry is one implementation: its name, whether this CPU can run it, and
// what the package calls (kernels, or how to call them).
type Entry[K any] struct {
	Name      string
	Available bool
	Impl      K
}

// Set is the implementations of one set of kernels. Active is read on
// every call of a kernel, so it is a field: the package keeps its Set in a
// variable and reads Active.Impl directly.
type Set[K any] struct {
	Active Entry[K]

	noun    string // what an implementation is called in errors
	envVar  string
	entries []Entry[K]
	initErr error
}

// New returns a set holding only the portable implementation, named
// "generic" and active. noun names an implementation in errors ("kernel
// implementation"); envVar is the variable that forces one.
func New[K any](noun, envVar string, generic K) Set[K] {
	g := Entry[K]{Name: "generic", Available: true, Impl: generic}
	return Set[K]{Active: g, noun: noun, envVar: envVar, entries: []Entry[K]{g}}
}

// Register adds an implementation, more preferred than those before it,
// and makes the choice again.
func (s *Set[K]) Register(e Entry[K]) {
	s.entries = append(s.entries, e)
	s.Select()
}

// Select activates the environment variable's choice or the preferred
// available implementation, and records why when the former is impossible.
func (s *Set[K]) Select() {
	s.initErr = nil
	for _, e := range s.entries {
		if e.Available {
			s.Active = e
		}
	}
	if want := strings.TrimSpace(os.Getenv(s.envVar)); want != "" {
		if err := s.Use(want); err != nil {
			s.initErr = fmt.Errorf("%s=%q: %w; using %q", s.envVar, want, err, s.Active.Name)
		}
	}
}

// Entries returns every implementation compiled in, least preferred first.
func (s *Set[K]) Entries() []Entry[K] { return s.entries }

// Available returns the names of the implementations this CPU can run,
// least preferred first ("generic" is always first).
func (s *Set[K]) Available() []string {
	var names []string
	for _, e := range s.entries {
		if e.Available {
			names = append(names, e.Name)
		}
	}
	return names
}

// Use makes the named implementation the active one. It returns an error
// if the name is unknown or this CPU cannot run it, and then leaves the
// active implementation unchanged. It is not safe to call while kernels
// run on other goroutines.
func (s *Set[K]) Use(name string) error {
	var known []string
	for _, e := range s.entries {
		known = append(known, e.Name)
		if e.Name != name {
			continue
		}
		if !e.Available {
			return fmt.Errorf("%s %q is not supported by this CPU (available: %s)", s.noun, name, strings.Join(s.Available(), ", "))
		}
		s.Active = e
		return nil
	}
	return fmt.Errorf("unknown %s %q (compiled in: %s)", s.noun, name, strings.Join(known, ", "))
}

// InitError reports an environment variable setting that could not be
// honoured (nil if none was set or it was honoured).
func (s *Set[K]) InitError() error { return s.initErr }
