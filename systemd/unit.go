package systemd

import _ "embed"

// UnitName is the name under which the unit file is installed.
const UnitName = "bnnd.service"

// UnitFile is the content of bnnd.service, the unit the bnnd package installs
// to /lib/systemd/system. Embedded so the binary can show or install the very
// unit it was tested with.
//
//go:embed bnnd.service
var UnitFile []byte
