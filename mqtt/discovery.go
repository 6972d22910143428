package mqtt

import "encoding/json"

// Keys that the Home Assistant entities read from the daemon's JSON
// payloads. The daemon may send more keys; these must be present.
const (
	KeyPrequentialAcc = "prequential_acc" // progress: accuracy in [0,1]
	KeyHoldoutAcc     = "holdout_acc"     // progress: accuracy in [0,1], null before the first evaluation
	KeySamplesPerS    = "samples_per_s"   // progress: samples per second
	KeyTrainingBytes  = "training_bytes"  // memory: bytes of training state
	KeyRSSBytes       = "rss_bytes"       // memory: process resident set size
	KeyMomentumBits   = "momentum_bits"   // encoding: bits per momentum value (mean over layers)
	KeyLostRatio      = "lost_ratio"      // encoding: fraction of momentum updates lost, in [0,1]
	KeyClass          = "class"           // prediction: the predicted class's name
	KeyScore          = "score"           // prediction: its probability, in [0,1]
	KeyPaused         = "paused"          // health: training paused (bool)
)

// LabelNoneOption is how the label select shows "no label": Home
// Assistant reads a "None" state as unknown, and a select's state must be
// one of its options.
const LabelNoneOption = "(no label)"

// discoveryTopic is the device-based discovery topic.
func discoveryTopic(discoveryPrefix, deviceID string) string {
	return discoveryPrefix + "/device/" + deviceID + "/config"
}

// haComponent is one entry of "cmps", in Home Assistant's abbreviated keys.
type haComponent struct {
	Platform        string   `json:"p"`
	Name            string   `json:"name"`
	UniqueID        string   `json:"uniq_id"`
	StateTopic      string   `json:"stat_t,omitempty"`
	ValueTemplate   string   `json:"val_tpl,omitempty"`
	CommandTemplate string   `json:"cmd_tpl,omitempty"`
	Unit            string   `json:"unit_of_meas,omitempty"`
	DeviceClass     string   `json:"dev_cla,omitempty"`
	StateClass      string   `json:"stat_cla,omitempty"`
	Precision       *int     `json:"sug_dsp_prc,omitempty"`
	Icon            string   `json:"ic,omitempty"`
	EntityCategory  string   `json:"ent_cat,omitempty"`
	CommandTopic    string   `json:"cmd_t,omitempty"`
	Options         []string `json:"ops,omitempty"`
	PayloadPress    string   `json:"pl_prs,omitempty"`
	PayloadOn       string   `json:"pl_on,omitempty"`
	PayloadOff      string   `json:"pl_off,omitempty"`
	Optimistic      *bool    `json:"opt,omitempty"`
	QoS             int      `json:"qos"`
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
// prediction, memory and encoding JSON (the technical ones as
// diagnostics), the label select showing the retained label topic, and a
// button for each enabled command. enabled says which commands are.
func discoveryPayload(base, deviceID, version string, classes []string, enabled func(cmd string) bool) ([]byte, error) {
	uid := "bnnd_" + deviceID
	one, zero := 1, 0
	sensor := func(name, topic, tpl, unit, devClass string, prec *int) haComponent {
		return haComponent{Platform: "sensor", Name: name, StateTopic: base + topic, ValueTemplate: tpl,
			Unit: unit, DeviceClass: devClass, StateClass: "measurement", Precision: prec}
	}
	diagnostic := func(c haComponent) haComponent { c.EntityCategory = "diagnostic"; return c }
	// "None" is Home Assistant's unknown state: the hold-out accuracy is
	// unknown, not 0, before its first evaluation.
	holdout := "{{ (value_json." + KeyHoldoutAcc + " * 100) | round(2) if value_json." + KeyHoldoutAcc + " is not none else 'None' }}"
	// Two significant digits: a rate that wobbles in its third digit would
	// write the recorder at every message.
	rate := "{% set r = value_json." + KeySamplesPerS + " %}{{ r | round(1 - (r | abs | log(10) | int) if r | abs >= 1 else 1) }}"
	cmps := map[string]haComponent{
		"prequential_accuracy": sensor("Prequential accuracy", TopicProgress,
			"{{ (value_json."+KeyPrequentialAcc+" * 100) | round(2) }}", "%", "", &one),
		"holdout_accuracy": sensor("Hold-out accuracy", TopicProgress, holdout, "%", "", &one),
		"samples_per_s":    diagnostic(sensor("Samples per second", TopicProgress, rate, "samples/s", "", &one)),
		"training_memory": diagnostic(sensor("Training memory", TopicMemory,
			"{{ value_json."+KeyTrainingBytes+" }}", "B", "data_size", &zero)),
		"rss": diagnostic(sensor("Resident memory", TopicMemory,
			"{{ value_json."+KeyRSSBytes+" }}", "B", "data_size", &zero)),
		"momentum_bits": diagnostic(sensor("Momentum bits", TopicEncoding,
			"{{ value_json."+KeyMomentumBits+" }}", "bit", "", &one)),
		"lost_ratio": diagnostic(sensor("Lost update ratio", TopicEncoding,
			"{{ (value_json."+KeyLostRatio+" * 100) | round(3) }}", "%", "", &one)),
		"prediction_score": sensor("Prediction score", TopicPrediction,
			"{{ (value_json."+KeyScore+" * 100) | round(1) }}", "%", "", &zero),
		"paused": {Platform: "binary_sensor", Name: "Training paused", StateTopic: base + TopicHealth,
			ValueTemplate: "{{ 'ON' if value_json." + KeyPaused + " else 'OFF' }}", PayloadOn: "ON", PayloadOff: "OFF", Icon: "mdi:pause-circle"},
	}
	if len(classes) > 0 {
		// An enum sensor needs its options; before the first class there
		// is nothing to predict.
		cmps["prediction"] = haComponent{Platform: "sensor", Name: "Prediction", StateTopic: base + TopicPrediction,
			ValueTemplate: "{{ value_json." + KeyClass + " }}", DeviceClass: "enum", Options: classes, Icon: "mdi:brain"}
	}
	if enabled(CmdLabel) {
		cmps["label"] = haComponent{Platform: "select", Name: "Label", StateTopic: base + TopicLabel, CommandTopic: base + "cmd/" + CmdLabel,
			ValueTemplate:   "{{ '" + LabelNoneOption + "' if value == '" + LabelNone + "' else value }}",
			CommandTemplate: "{{ '" + LabelNone + "' if value == '" + LabelNoneOption + "' else value }}",
			Options:         append([]string{LabelNoneOption}, classes...), Icon: "mdi:tag", QoS: 1}
	}
	for _, b := range []struct{ cmd, name, icon string }{
		{CmdCheckpoint, "Checkpoint", "mdi:content-save"},
		{CmdPause, "Pause training", "mdi:pause"},
		{CmdResume, "Resume training", "mdi:play"},
	} {
		if enabled(b.cmd) {
			cmps[b.cmd] = haComponent{Platform: "button", Name: b.name, CommandTopic: base + "cmd/" + b.cmd,
				PayloadPress: "PRESS", Icon: b.icon, QoS: 1}
		}
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
