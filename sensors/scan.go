package sensors

import (
	"fmt"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
)

// Found is a device that answered a probe.
type Found struct {
	Addr uint16
	Kind string // source kind to use in a spec ("mpu6050", "adxl345"), "" if unknown
	Chip string // human name, e.g. "MPU-6050"
	ID   byte   // the id register's value
	Note string // why it is or is not recognised
}

func (f Found) String() string {
	s := fmt.Sprintf("0x%02x %s (id 0x%02x)", f.Addr, f.Chip, f.ID)
	if f.Note != "" {
		s += ": " + f.Note
	}
	return s
}

// probes are the known devices: address, id register, expected ids.
var probes = []struct {
	addr  uint16
	reg   byte
	kind  string
	ids   map[byte]string
	other string
}{
	{0x68, 0x75, "mpu6050", map[byte]string{0x68: "MPU-6050", 0x70: "MPU-6500", 0x71: "MPU-9250"}, "0x68 is also used by DS1307/DS3231 clocks"},
	{0x69, 0x75, "mpu6050", map[byte]string{0x68: "MPU-6050", 0x70: "MPU-6500", 0x71: "MPU-9250"}, ""},
	{0x53, 0x00, "adxl345", map[byte]string{0xE5: "ADXL345"}, ""},
	{0x1D, 0x00, "adxl345", map[byte]string{0xE5: "ADXL345"}, "0x1d is also used by other accelerometers"},
}

// Probe looks for the known sensors on bus by reading their id registers
// (reads only: nothing is written to any device).
func Probe(bus i2c.Bus) []Found {
	var out []Found
	for _, p := range probes {
		var id [1]byte
		if err := bus.Tx(p.addr, []byte{p.reg}, id[:]); err != nil {
			continue // nothing answers there
		}
		f := Found{Addr: p.addr, ID: id[0]}
		if chip, ok := p.ids[id[0]]; ok {
			f.Kind, f.Chip = p.kind, chip
			if chip != "MPU-6050" && chip != "ADXL345" {
				f.Note = "family member, driven as " + p.kind
			}
		} else {
			f.Chip = "unknown device"
			f.Note = fmt.Sprintf("id register %#02x does not match %s", p.reg, p.kind)
			if p.other != "" {
				f.Note += "; " + p.other
			}
		}
		out = append(out, f)
	}
	return out
}

// BusInfo is one I²C bus and what answered on it.
type BusInfo struct {
	Name    string
	Aliases []string
	Number  int
	Found   []Found
	Err     error // the bus could not be opened
}

// Scan lists the host's I²C buses (only the one named busName if not
// empty) and probes each for known sensors.
func Scan(busName string) ([]BusInfo, error) {
	if err := hostInit(); err != nil {
		return nil, fmt.Errorf("sensors: initialising periph host drivers: %w", err)
	}
	var out []BusInfo
	for _, ref := range i2creg.All() {
		if busName != "" && !refMatches(ref, busName) {
			continue
		}
		info := BusInfo{Name: ref.Name, Aliases: ref.Aliases, Number: ref.Number}
		bus, err := ref.Open()
		if err != nil {
			info.Err = err
		} else {
			info.Found = Probe(bus)
			bus.Close()
		}
		out = append(out, info)
	}
	if busName != "" && len(out) == 0 {
		return nil, fmt.Errorf("sensors: no I²C bus named %q (see 'bnnd sensors scan' for the list)", busName)
	}
	return out, nil
}

func refMatches(ref *i2creg.Ref, name string) bool {
	if ref.Name == name || (ref.Number >= 0 && fmt.Sprint(ref.Number) == name) {
		return true
	}
	for _, a := range ref.Aliases {
		if a == name {
			return true
		}
	}
	return false
}
