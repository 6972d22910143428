package sensors

func loadCSVSpec(s *spec, split Split, opt LoadOptions) (Dataset, error) {
	return nil, s.errorf("csv datasets are not implemented yet")
}
