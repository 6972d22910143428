package main

import (
	"errors"
	"flag"
	"io"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/fp"
)

type searchFlags struct{}

func (s *searchFlags) register(fs *flag.FlagSet) {}
func (s *searchFlags) check() error              { return nil }

func calibrateFor(net *bnn.Network, opt *bop.Optimizer, next func() (int, error), steps int, perLayer bool, seed uint64, sf *searchFlags, log io.Writer) ([]fp.Format, error) {
	return nil, errors.New("--momentum auto needs the encoding search, not built yet")
}
