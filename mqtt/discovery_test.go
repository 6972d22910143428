package mqtt

import (
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// checkDiscovery verifies the device-based discovery message and returns
// the select's options.
func checkDiscovery(t *testing.T, payload, base, id string) []string {
	t.Helper()
	if strings.Contains(payload, "object_id") || strings.Contains(payload, `"obj_id"`) {
		t.Errorf("discovery uses the deprecated object_id: %s", payload)
	}
	var d struct {
		Dev struct {
			IDs  []string `json:"ids"`
			Name string   `json:"name"`
		} `json:"dev"`
		O struct {
			Name string `json:"name"`
			SW   string `json:"sw"`
			URL  string `json:"url"`
		} `json:"o"`
		AvtyT      string                    `json:"avty_t"`
		PlAvail    string                    `json:"pl_avail"`
		PlNotAvail string                    `json:"pl_not_avail"`
		Cmps       map[string]map[string]any `json:"cmps"`
	}
	if err := json.Unmarshal([]byte(payload), &d); err != nil {
		t.Fatalf("discovery payload is not JSON: %v", err)
	}
	if len(d.Dev.IDs) == 0 || d.Dev.Name == "" || d.O.Name != "bnnd" || d.O.SW != "1.2.3" || d.O.URL == "" {
		t.Errorf("device/origin incomplete: %+v %+v", d.Dev, d.O)
	}
	if d.AvtyT != base+"status" || d.PlAvail != "online" || d.PlNotAvail != "offline" {
		t.Errorf("availability %q %q %q", d.AvtyT, d.PlAvail, d.PlNotAvail)
	}
	wantPlatforms := map[string]string{
		"prequential_accuracy": "sensor", "holdout_accuracy": "sensor", "samples_per_s": "sensor",
		"training_memory": "sensor", "rss": "sensor", "momentum_bits": "sensor", "lost_ratio": "sensor",
		"prediction": "sensor", "prediction_score": "sensor", "paused": "binary_sensor",
		"label": "select", "checkpoint": "button", "pause": "button", "resume": "button",
	}
	if len(d.Cmps) != len(wantPlatforms) {
		t.Errorf("%d components, want %d", len(d.Cmps), len(wantPlatforms))
	}
	telemetry := map[string][]string{ // the keys each topic's JSON must carry
		base + TopicProgress:   {KeyPrequentialAcc, KeyHoldoutAcc, KeySamplesPerS},
		base + TopicMemory:     {KeyTrainingBytes, KeyRSSBytes},
		base + TopicEncoding:   {KeyMomentumBits, KeyLostRatio},
		base + TopicPrediction: {KeyClass, KeyScore},
		base + TopicHealth:     {KeyPaused},
	}
	for _, key := range []string{"samples_per_s", "training_memory", "rss", "momentum_bits", "lost_ratio"} {
		if c := d.Cmps[key]; c["ent_cat"] != "diagnostic" {
			t.Errorf("%s: entity category %v, want diagnostic", key, c["ent_cat"])
		}
	}
	if tpl, _ := d.Cmps["holdout_accuracy"]["val_tpl"].(string); !strings.Contains(tpl, "'None'") {
		t.Errorf("hold-out accuracy template %q does not show unknown before the first evaluation", tpl)
	}
	keyRef := regexp.MustCompile(`value_json\.([a-z_]+)`)
	uniq := map[string]bool{}
	var options []string
	for key, p := range wantPlatforms {
		c, ok := d.Cmps[key]
		if !ok {
			t.Errorf("component %q missing", key)
			continue
		}
		if c["p"] != p {
			t.Errorf("%s: platform %v, want %s", key, c["p"], p)
		}
		u, _ := c["uniq_id"].(string)
		if !strings.HasPrefix(u, "bnnd_"+id+"_") || uniq[u] {
			t.Errorf("%s: unique id %q not unique or not device-scoped", key, u)
		}
		uniq[u] = true
		switch p {
		case "sensor", "binary_sensor":
			keys, ok := telemetry[c["stat_t"].(string)]
			if !ok {
				t.Errorf("%s: state topic %v is not a telemetry topic", key, c["stat_t"])
			}
			ref := keyRef.FindStringSubmatch(c["val_tpl"].(string))
			if ref == nil || !contains(keys, ref[1]) {
				t.Errorf("%s: value template %v reads no documented key of %v", key, c["val_tpl"], c["stat_t"])
			}
		case "select":
			if c["cmd_t"] != base+"cmd/label" || c["stat_t"] != base+TopicLabel {
				t.Errorf("label select commands %v, state %v", c["cmd_t"], c["stat_t"])
			}
			for _, o := range c["ops"].([]any) {
				options = append(options, o.(string))
			}
		case "button":
			if c["cmd_t"] != base+"cmd/"+key || c["pl_prs"] == "" {
				t.Errorf("%s button: %v", key, c)
			}
		}
	}
	return options
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestDiscovery(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		id := deviceID(t)
		base := "bnnd/" + id + "/"
		haPrefix := map[string]string{"embedded": "ha-test"}[b.name] // and the default
		if haPrefix == "" {
			haPrefix = "homeassistant"
		}
		topic := haPrefix + "/device/" + id + "/config"
		rec := subscribe(t, b.url, nil, haPrefix+"/device/"+id+"/#")
		c := startClient(t, Config{Broker: b.url, DeviceID: id, Discovery: true, SoftwareVersion: "1.2.3",
			DiscoveryPrefix: map[string]string{"embedded": "ha-test"}[b.name],
			Classes:         []string{"sit", "walk"}, CommandsEnabled: true}, func(ctx context.Context, cmd Command) (any, error) { return nil, nil })

		m := rec.waitFor(topic, 5*time.Second, nil)
		if got := checkDiscovery(t, m.payload, base, id); !reflect.DeepEqual(got, []string{LabelNoneOption, "sit", "walk"}) {
			t.Errorf("label options %v", got)
		}
		late := subscribe(t, b.url, nil, topic)
		if m := late.waitFor(topic, 5*time.Second, nil); !m.retained {
			t.Error("discovery is not retained")
		}

		if err := c.SetClasses([]string{"0", "1", "2"}); err != nil {
			t.Fatal(err)
		}
		// Discovery is idempotent and may be republished with the old classes
		// (on connect, on Home Assistant's status) before SetClasses; what
		// matters is that one with the new classes follows.
		wantOptions := []string{LabelNoneOption, "0", "1", "2"}
		rec.waitFor(topic, 5*time.Second, func(m recMsg) bool {
			return reflect.DeepEqual(checkDiscovery(t, m.payload, base, id), wantOptions)
		})
		if err := c.SetClasses([]string{"a", "a"}); err == nil {
			t.Error("SetClasses accepted duplicate names")
		}

		// Home Assistant restarted: it announces itself, we republish.
		rec.publish(haPrefix+"/status", "offline", false)
		rec.publish(haPrefix+"/status", "online", false)
		rec.nth(topic, 2, 5*time.Second)
		if st := waitStats(c, func(s Stats) bool { return s.Discoveries == 3 }); st.Discoveries != 3 {
			t.Errorf("%d discovery messages, want 3 (start, SetClasses, HA online)", st.Discoveries)
		}
	})
}

// Only enabled commands appear; before the first class there is no
// prediction sensor (an enum needs options).
func TestDiscoveryFollowsConfiguration(t *testing.T) {
	payload, err := discoveryPayload("bnnd/x/", "x", "1", nil, func(cmd string) bool { return cmd != CmdPause && cmd != CmdLabel })
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Cmps map[string]map[string]any `json:"cmps"`
	}
	if err := json.Unmarshal(payload, &d); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"pause", "label", "prediction"} {
		if _, ok := d.Cmps[absent]; ok {
			t.Errorf("component %q present", absent)
		}
	}
	for _, present := range []string{"resume", "checkpoint", "prediction_score", "paused"} {
		if _, ok := d.Cmps[present]; !ok {
			t.Errorf("component %q missing", present)
		}
	}
}
