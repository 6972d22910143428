package systemd

import _ "embed"

// UnitName is the name under which the unit file is installed.
const UnitName = "bnnd.service"

// UnitFile is the content of bnnd.service, the unit the bnnd package installs
// to /lib/systemd/system (packaging/nfpm.yaml puts it there; no bnnd command installs
// or prints it). Embedded so that the tests check and run the very file the
// package ships.
//
//go:embed bnnd.service
var UnitFile []byte
