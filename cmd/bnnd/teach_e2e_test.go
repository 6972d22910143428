package main

// The main workflow end to end: the daemon on a simulated I²C chip replays
// unlabelled recordings of three activities, and the test teaches it over
// MQTT as a person would, then checks what it predicts on what it was
// never told.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// teachOrder is the order in which the person in the test shows the
// activities (and so the order of the classes the labels create).
var teachOrder = []string{"walk", "still", "shake"}

// Each segment of the recording plays one activity for segmentRows
// readings; the person labels it from labelMargin readings after its start
// to labelMargin before its end (people are not exact).
const (
	segmentRows     = 1500 // 30 s at 50 Hz
	labelMargin     = 300
	prologue        = 3 // unlabelled segments while the sensor learns its scaling
	teachRounds     = 5
	testRounds      = 3
	simRate, simWin = 50, 64
)

// recording is a replay directory: seg-NNN.csv files, one per segment.
type recording struct {
	glob     string
	segments []string // the activity of each segment, in play order
}

// synthRows returns synthetic-imu readings by activity, as 'bnnd sensors
// read --csv' records them (time, ax…gz, label).
func synthRows(t *testing.T, seed, n int) (header []string, byActivity map[string][][]string) {
	t.Helper()
	var out, errOut bytes.Buffer
	// mounted: the board keeps its orientation, as on a machine or a door.
	spec := fmt.Sprintf("synthetic-imu,pace=0,seed=%d,rate=%d,mounted=1", seed, simRate)
	if code := runMain(context.Background(), []string{"sensors", "read", spec, "--csv", "-n", fmt.Sprint(n)}, &out, &errOut); code != 0 {
		t.Fatalf("bnnd sensors read %s: exit %d: %s", spec, code, errOut.String())
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header = rows[0]
	label := slices.Index(header, "label")
	if label < 0 {
		t.Fatalf("sensors read --csv wrote no label column: %q", header)
	}
	byActivity = map[string][][]string{}
	for _, r := range rows[1:] {
		byActivity[r[label]] = append(byActivity[r[label]], append(r[:label:label], r[label+1:]...))
	}
	return append(header[:label:label], header[label+1:]...), byActivity
}

// writeRecording lays out the segments of order as unlabelled CSV files,
// the readings of each activity taken in turn from rows, from next on.
func writeRecording(t *testing.T, dir string, order []string, header []string, rows map[string][][]string, next map[string]int) recording {
	t.Helper()
	for i, act := range order {
		pool := rows[act]
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		w.Write(header)
		for k := 0; k < segmentRows; k++ {
			w.Write(pool[(next[act]+k)%len(pool)])
		}
		next[act] += segmentRows
		w.Flush()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seg-%03d.csv", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return recording{glob: filepath.Join(dir, "seg-*.csv"), segments: order}
}

// teachingRecording is the prologue, the rounds the person teaches, then
// the rounds left unlabelled. All come from one simulated board; the
// unlabelled rounds play readings from the second half of the simulation,
// which no taught round plays.
func teachingRecording(t *testing.T) (rec recording, firstTest int) {
	header, rows := synthRows(t, 3, 120000)
	var order []string
	for i := range prologue {
		order = append(order, teachOrder[i%len(teachOrder)])
	}
	for range teachRounds {
		order = append(order, teachOrder...)
	}
	firstTest = len(order)
	for r := range testRounds {
		// Another order than taught, so a model that learned the sequence
		// rather than the activities fails.
		order = append(order, teachOrder[(r+1)%3], teachOrder[(r+2)%3], teachOrder[r%3])
	}
	taught, unseen := map[string]int{}, map[string]int{}
	for act, rs := range rows {
		if len(rs)/2 < (1+teachRounds)*segmentRows {
			t.Fatalf("only %d readings of %s", len(rs), act)
		}
		unseen[act] = len(rs) / 2
	}
	dir := t.TempDir()
	rec = writeRecording(t, dir, order[:firstTest], header, rows, taught)
	testDir := t.TempDir()
	testRec := writeRecording(t, testDir, order[firstTest:], header, rows, unseen)
	matches, _ := filepath.Glob(testRec.glob)
	for i, m := range matches {
		if err := os.Rename(m, filepath.Join(dir, fmt.Sprintf("seg-%03d.csv", firstTest+i))); err != nil {
			t.Fatal(err)
		}
	}
	rec.segments = order
	return rec, firstTest
}

func teachConfig(t *testing.T, chip, replay, stateDir, broker, id string) string {
	t.Helper()
	text := fmt.Sprintf(`source:
  spec: %s:sim,replay=%s,pace=15,rate=%d,range=8g,window=%d,hop=16,warmup=%d
model:
  spec: mlp-s
  max_classes: 4
training:
  momentum: e3m2b24s
  batch: 32
  step_every: 1
  threads: 1
  holdout_fraction: 0.1
replay:
  budget: 512KiB
checkpoint:
  dir: %s
  interval: 10m
mqtt:
  broker: tcp://%s
  device_id: %s
  intervals:
    progress: 100ms
    prediction: 10ms
    memory: 1s
    encoding: 1s
    health: 1s
`, chip, replay, simRate, simWin, prologue*segmentRows-200, stateDir, broker, id)
	path := filepath.Join(t.TempDir(), "bnnd.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type predictionMsg struct {
	Class   string `json:"class"`
	Reading uint64 `json:"reading"`
}

type teachProgress struct {
	Readings          uint64 `json:"readings"`
	SamplesStraddling uint64 `json:"samples_straddling"`
	Step              uint64 `json:"step"`
}

// TestTeachOnSimulatedChip is the main workflow on both simulated chips.
func TestTeachOnSimulatedChip(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of simulated teaching per chip; the race and purego runs cover it")
	}
	rec, firstTest := teachingRecording(t)
	broker := startMosquitto(t)
	for _, chip := range []string{"mpu6050", "adxl345"} {
		t.Run(chip, func(t *testing.T) {
			t.Parallel()
			teachChip(t, chip, rec, firstTest, broker.Addr)
		})
	}
}

func teachChip(t *testing.T, chip string, rec recording, firstTest int, broker string) {
	scale := timeScale()
	id := "e2e-teach-" + chip
	base := "bnnd/" + id + "/"
	stateDir := filepath.Join(t.TempDir(), "state")
	watch := subscribe(t, broker, base+"#")
	ha := subscribe(t, broker, "homeassistant/device/"+id+"/config")
	p := startBnnd(t, childOptions{}, "run", "-config", teachConfig(t, chip, rec.glob, stateDir, broker, id))

	// Before anybody labels, the device knows no class.
	watch.waitFor(p, base+"classes", 0, 30*scale*time.Second, payloadIs("[]"))
	watch.waitFor(p, base+"label", 0, 30*scale*time.Second, payloadIs("none"))

	readings := func() uint64 {
		var last uint64
		for i := watch.count() - 1; i >= 0; i-- {
			watch.mu.Lock()
			m := watch.msgs[i]
			watch.mu.Unlock()
			if m.topic == base+"progress" {
				var pr teachProgress
				if json.Unmarshal([]byte(m.payload), &pr) == nil {
					last = pr.Readings
				}
				break
			}
		}
		return last
	}
	waitReading := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(60 * scale * time.Second)
		for readings() < n {
			p.alive()
			if time.Now().After(deadline) {
				t.Fatalf("the replay did not reach reading %d (at %d)", n, readings())
			}
			watch.wait(p, deadline)
		}
	}
	results := 0
	label := func(payload string) {
		t.Helper()
		from := watch.count()
		publish(t, broker, base+"cmd/label", payload)
		m, _ := watch.waitFor(p, base+"cmd/result", from, 10*scale*time.Second, func(received) bool { return true })
		var res struct {
			OK     bool   `json:"ok"`
			Error  string `json:"error"`
			Result struct {
				Label string `json:"label"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(m.payload), &res); err != nil || !res.OK {
			t.Fatalf("label %s: %s", payload, m.payload)
		}
		results++
	}

	var firstLabel time.Time
	for seg := prologue; seg < firstTest; seg++ {
		start := uint64(seg * segmentRows)
		waitReading(start + labelMargin)
		if firstLabel.IsZero() {
			firstLabel = time.Now()
		}
		label(rec.segments[seg])
		waitReading(start + segmentRows - labelMargin)
		label("none")
	}
	t.Logf("%s: taught %d segments with %d labels", chip, firstTest-prologue, results)

	if code := p.wait(120 * scale * time.Second); code != 0 {
		t.Fatalf("exit status %d when the recording ended, want 0", code)
	}

	// Predictions on the unlabelled rounds: windows wholly inside one
	// segment, matched to the activity being played.
	var right, total int
	var firstRight time.Time
	var firstRightReading uint64
	watch.mu.Lock()
	msgs := slices.Clone(watch.msgs)
	watch.mu.Unlock()
	var straddling uint64
	for _, m := range msgs {
		switch m.topic {
		case base + "progress":
			var pr teachProgress
			if json.Unmarshal([]byte(m.payload), &pr) == nil {
				straddling = max(straddling, pr.SamplesStraddling)
			}
		case base + "prediction":
			var pm predictionMsg
			if err := json.Unmarshal([]byte(m.payload), &pm); err != nil || pm.Reading < simWin {
				continue
			}
			first, last := int(pm.Reading)-simWin, int(pm.Reading)-1 // rows of the window
			seg := first / segmentRows
			if last/segmentRows != seg || seg >= len(rec.segments) {
				continue
			}
			if firstRight.IsZero() && seg >= prologue && pm.Class == rec.segments[seg] {
				firstRight, firstRightReading = m.at, pm.Reading
			}
			if seg < firstTest {
				continue
			}
			total++
			if pm.Class == rec.segments[seg] {
				right++
			}
		}
	}
	acc := float64(right) / float64(max(total, 1))
	sensorTime := time.Duration(float64(firstRightReading-prologue*segmentRows-labelMargin) / simRate * float64(time.Second))
	t.Logf("%s: %d of %d predictions right on unlabelled windows (%.1f%%); first right prediction %v after the first label (%v of sensor time); %d windows straddled a label change",
		chip, right, total, 100*acc, firstRight.Sub(firstLabel).Round(time.Millisecond), sensorTime, straddling)
	if total < 30 || acc < 0.9 {
		t.Errorf("%s: accuracy %.3f on %d predictions of unlabelled windows, want ≥ 0.9 on ≥ 30", chip, acc, total)
	}
	if straddling == 0 {
		t.Error("no window straddled a label change, though labels changed within the recording")
	}
	t.Logf("%s: bnnd train offline on the readings the person labelled, tested on the unlabelled rounds: %.1f%%",
		chip, 100*offlineAccuracy(t, chip, rec, firstTest))

	// The classes exist because of the labels, in the order taught, and
	// Home Assistant was told.
	last, _ := watch.waitFor(nil, base+"classes", 0, time.Second, func(m received) bool { return m.payload != "[]" })
	var classes []string
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].topic == base+"classes" {
			json.Unmarshal([]byte(msgs[i].payload), &classes)
			break
		}
	}
	if !slices.Equal(classes, teachOrder) {
		t.Errorf("classes topic %q (first non-empty %s), want %q", classes, last.payload, teachOrder)
	}
	checkDiscoveryClasses(t, ha, id, teachOrder)

	// A restart keeps them: a new subscriber gets them retained.
	p2 := startBnnd(t, childOptions{}, "run", "-config", teachConfig(t, chip, rec.glob, stateDir, broker, id))
	again := subscribe(t, broker, base+"classes")
	again.waitFor(p2, base+"classes", 0, 30*scale*time.Second, func(m received) bool {
		return m.payload == `["walk","still","shake"]`
	})
	watch.waitFor(p2, base+"status", len(msgs), 30*scale*time.Second, payloadIs("online"))
	if !strings.Contains(p2.stderr.String(), "msg=resumed") {
		t.Errorf("the restarted daemon did not resume from its checkpoint:\n%s", p2.stderr.String())
	}

	// Labels a person gets wrong: each answered with what is wrong, and
	// the classes stay as they were.
	ask := func(payload string) (ok bool, answer string) {
		t.Helper()
		from := watch.count()
		publish(t, broker, base+"cmd/label", payload)
		m, _ := watch.waitFor(p2, base+"cmd/result", from, 10*scale*time.Second, func(received) bool { return true })
		var res struct {
			OK     bool            `json:"ok"`
			Error  string          `json:"error"`
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal([]byte(m.payload), &res); err != nil {
			t.Fatalf("result %q: %v", m.payload, err)
		}
		return res.OK, res.Error + string(res.Result)
	}
	if ok, res := ask("jump"); !ok || !strings.Contains(res, `"new_class":true`) {
		t.Errorf("a fourth class with max_classes 4: %s", res)
	}
	for payload, want := range map[string]string{
		"fly":                               "class limit reached (4 classes: walk, still, shake, jump)",
		strings.Repeat("x", 70):             "longer than 64",
		"a\u0001b":                          "control or invalid character",
		`{"label":"walk","for":"-5s"}`:      "positive duration",
		`{"label":"walk","for":"48h"}`:      "outside 0 to 24h",
		`{"label":"","for":"1s"}`:           "empty label",
		`{"label":" walk ","for":"soon"}`:   "not a duration",
		`{"label":"walk","for":"1s","x":1}`: `unknown field "x"`,
	} {
		if ok, res := ask(payload); ok || !strings.Contains(res, want) {
			t.Errorf("label %q: %s; want an error saying %q", payload, res, want)
		}
	}
	// A label held for a time clears itself, and the retained label topic
	// shows it.
	from := watch.count()
	if ok, res := ask(`{"label":"walk","for":"1s"}`); !ok || !strings.Contains(res, `"until"`) {
		t.Errorf("a timed label: %s", res)
	}
	_, next := watch.waitFor(p2, base+"label", from, 10*scale*time.Second, payloadIs("walk"))
	watch.waitFor(p2, base+"label", next, 10*scale*time.Second, payloadIs("none"))
	p2.signal(syscall.SIGTERM)
	if code := p2.wait(30 * scale * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}

// checkDiscoveryClasses checks that the newest discovery message offers
// the classes in the label select and the prediction sensor.
func checkDiscoveryClasses(t *testing.T, ha *subscriber, id string, classes []string) {
	t.Helper()
	ha.mu.Lock()
	msgs := slices.Clone(ha.msgs)
	ha.mu.Unlock()
	if len(msgs) == 0 {
		t.Fatal("no discovery message")
	}
	var d struct {
		Cmps map[string]struct {
			Options []string `json:"ops"`
		} `json:"cmps"`
	}
	if err := json.Unmarshal([]byte(msgs[len(msgs)-1].payload), &d); err != nil {
		t.Fatal(err)
	}
	if got := d.Cmps["label"].Options; !slices.Equal(got[1:], classes) {
		t.Errorf("discovery label options %q, want the no-label option then %q", got, classes)
	}
	if got := d.Cmps["prediction"].Options; !slices.Equal(got, classes) {
		t.Errorf("discovery prediction options %q, want %q", got, classes)
	}
}

// publish sends one message as a separate client, as mosquitto_pub does.
func publish(t *testing.T, broker, topic, payload string) {
	t.Helper()
	s := subscribe(t, broker, "bnnd-e2e-unused/#")
	tok := s.client.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
	s.close()
}

// offlineAccuracy trains with 'bnnd train' on what the person labelled
// (the middle of each taught segment) and tests on the unlabelled rounds,
// for comparison with the online learner.
func offlineAccuracy(t *testing.T, chip string, rec recording, firstTest int) float64 {
	t.Helper()
	files, _ := filepath.Glob(rec.glob)
	trainDir, testDir := t.TempDir(), t.TempDir()
	for seg := prologue; seg < len(rec.segments); seg++ {
		rows, err := csv.NewReader(bytes.NewReader(must(os.ReadFile(files[seg])))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		dir, lo, hi := trainDir, labelMargin, segmentRows-labelMargin
		if seg >= firstTest {
			dir, lo, hi = testDir, 0, segmentRows
		}
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		w.Write(append(rows[0], "label"))
		for _, r := range rows[1+lo : 1+hi] {
			w.Write(append(r, rec.segments[seg]))
		}
		w.Flush()
		os.WriteFile(filepath.Join(dir, filepath.Base(files[seg])), b.Bytes(), 0o644)
	}
	cols := ",cols=ax,ay,az,gx,gy,gz"
	if chip == "adxl345" {
		cols = ",cols=ax,ay,az"
	}
	var out, errOut bytes.Buffer
	args := []string{"train", "--data", "csv:" + filepath.Join(trainDir, "*.csv") + cols, "--test", "csv:" + filepath.Join(testDir, "*.csv") + cols,
		"--window", fmt.Sprint(simWin), "--hop", "16", "--model", "mlp-s", "--epochs", "15", "--batch", "32", "--momentum", "e3m2b24s", "--threads", "1", "--json"}
	if code := runMain(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("bnnd %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res struct {
		TestAcc float64 `json:"test_acc"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("bnnd train --json: %v", err)
	}
	return res.TestAcc
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
