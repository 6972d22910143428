package mqtt

import "encoding/json"

// Keys that the Home Assistant sensors read from the daemon's JSON payloads.
// The daemon may send more keys; these must be present for the sensors.
const (
	KeyPrequentialAcc = "prequential_acc" // progress: accuracy in [0,1]
	KeyHoldoutAcc     = "holdout_acc"     // progress: accuracy in [0,1]
	KeySamplesPerS    = "samples_per_s"   // progress: samples per second
	KeyTrainingBytes  = "training_bytes"  // memory: bytes of training state
	KeyRSSBytes       = "rss_bytes"       // memory: process resident set size
	KeyMomentumBits   = "momentum_bits"   // encoding: bits per momentum value (mean over layers)
	KeyLostRatio      = "lost_ratio"      // encoding: fraction of momentum updates lost, in [0,1]
)

// discoveryTopic is the device-based discovery topic.
func discoveryTopic(discoveryPrefix, deviceID string) string {
	return discoveryPrefix + "/device/" + deviceID + "/config"
}

// haComponent is one entry of "cmps", in Home Assistant's abbreviated keys.
type haComponent struct {
	Platform       string   `json:"p"`
	Name           string   `json:"name"`
	UniqueID       string   `json:"uniq_id"`
	StateTopic     string   `json:"stat_t,omitempty"`
	ValueTemplate  string   `json:"val_tpl,omitempty"`
	Unit           string   `json:"unit_of_meas,omitempty"`
	DeviceClass    string   `json:"dev_cla,omitempty"`
	StateClass     string   `json:"stat_cla,omitempty"`
	Precision      *int     `json:"sug_dsp_prc,omitempty"`
	Icon           string   `json:"ic,omitempty"`
	EntityCategory string   `json:"ent_cat,omitempty"`
	CommandTopic   string   `json:"cmd_t,omitempty"`
	Options        []string `json:"ops,omitempty"`
	PayloadPress   string   `json:"pl_prs,omitempty"`
	Optimistic     *bool    `json:"opt,omitempty"`
	QoS            int      `json:"qos"`
}

type haDevice struct {
	Identifiers  []string `json:"ids"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"mf"`
	Model        string   `json:"mdl"`
	SWVersion    string   `json:"sw,omitempty"`
}

type haOrigin struct {
	Name      string `json:"name"`
	SWVersion string `json:"sw,omitempty"`
	URL       string `json:"url"`
}

type haDiscovery struct {
	Device              haDevice               `json:"dev"`
	Origin              haOrigin               `json:"o"`
	AvailabilityTopic   string                 `json:"avty_t"`
	PayloadAvailable    string                 `json:"pl_avail"`
	PayloadNotAvailable string                 `json:"pl_not_avail"`
	Components          map[string]haComponent `json:"cmps"`
	QoS                 int                    `json:"qos"`
}

// discoveryPayload builds the device-based discovery message: one device,
// its availability from the status topic, sensors reading the progress,
// memory and encoding JSON, a select for the label and buttons.
func discoveryPayload(base, deviceID, version string, classes []string) ([]byte, error) {
	uid := "bnnd_" + deviceID
	one, zero := 1, 0
	optimistic := true
	sensor := func(name, topic, tpl, unit, devClass string, prec *int) haComponent {
		return haComponent{Platform: "sensor", Name: name, StateTopic: base + topic, ValueTemplate: tpl,
			Unit: unit, DeviceClass: devClass, StateClass: "measurement", Precision: prec}
	}
	cmps := map[string]haComponent{
		"prequential_accuracy": sensor("Prequential accuracy", TopicProgress,
			"{{ (value_json."+KeyPrequentialAcc+" * 100) | round(2) }}", "%", "", &one),
		"holdout_accuracy": sensor("Hold-out accuracy", TopicProgress,
			"{{ (value_json."+KeyHoldoutAcc+" * 100) | round(2) }}", "%", "", &one),
		"samples_per_s": sensor("Samples per second", TopicProgress,
			"{{ value_json."+KeySamplesPerS+" }}", "samples/s", "", &one),
		"training_memory": sensor("Training memory", TopicMemory,
			"{{ value_json."+KeyTrainingBytes+" }}", "B", "data_size", &zero),
		"rss": sensor("Resident memory", TopicMemory,
			"{{ value_json."+KeyRSSBytes+" }}", "B", "data_size", &zero),
		"momentum_bits": sensor("Momentum bits", TopicEncoding,
			"{{ value_json."+KeyMomentumBits+" }}", "bit", "", &one),
		"lost_ratio": sensor("Lost update ratio", TopicEncoding,
			"{{ (value_json."+KeyLostRatio+" * 100) | round(3) }}", "%", "", &one),
		"label": {Platform: "select", Name: "Label", CommandTopic: base + "cmd/" + CmdLabel,
			Options: append([]string{LabelNone}, classes...), Optimistic: &optimistic, Icon: "mdi:tag", QoS: 1},
		"checkpoint": {Platform: "button", Name: "Checkpoint", CommandTopic: base + "cmd/" + CmdCheckpoint,
			PayloadPress: "PRESS", Icon: "mdi:content-save", QoS: 1},
		"pause": {Platform: "button", Name: "Pause training", CommandTopic: base + "cmd/" + CmdPause,
			PayloadPress: "PRESS", Icon: "mdi:pause", QoS: 1},
		"resume": {Platform: "button", Name: "Resume training", CommandTopic: base + "cmd/" + CmdResume,
			PayloadPress: "PRESS", Icon: "mdi:play", QoS: 1},
	}
	for key, c := range cmps {
		c.UniqueID = uid + "_" + key
		cmps[key] = c
	}
	d := haDiscovery{
		Device: haDevice{Identifiers: []string{uid}, Name: "bnnd " + deviceID, Manufacturer: "bnnd",
			Model: "on-device BNN trainer", SWVersion: version},
		Origin:              haOrigin{Name: "bnnd", SWVersion: version, URL: "https://github.com/bnnd/bnnd"},
		AvailabilityTopic:   base + "status",
		PayloadAvailable:    statusOnline,
		PayloadNotAvailable: statusOffline,
		Components:          cmps,
		QoS:                 0,
	}
	return json.Marshal(d)
}
