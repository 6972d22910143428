package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashKillsEnv sets the number of kills of TestRunProcessCrashLoop;
// BNND_CRASH_KILLS=100 is the full version (about four minutes).
const crashKillsEnv = "BNND_CRASH_KILLS"

var (
	writtenLine = regexp.MustCompile(`msg="checkpoint written" .*\bstep=(\d+)`)
	resumedLine = regexp.MustCompile(`msg=resumed .*\bstep=(\d+)`)
)

// TestRunProcessCrashLoop kills the daemon with SIGKILL at random moments
// 0.5 to 4 s after its start, over and over, as a crash-looping service
// would be, with a checkpoint every second and momentum auto (so kills also
// land in the encoding search and in the saves around it). Every start
// must resume at or after the step of the last checkpoint an earlier run
// logged as written (the line comes after the file and its directory are
// synced), never start afresh once a checkpoint exists, and never log an
// error; and the step must advance across the loop.
//
// The default of 25 kills takes under two minutes in 'go test -race' (half
// of it the first run's encoding search), so the full suite keeps it;
// BNND_CRASH_KILLS=100 runs the long version (about four and a half
// minutes). -short (the emulated and purego runs) takes 6 and leaves the
// search out.
func TestRunProcessCrashLoop(t *testing.T) {
	kills, calibrateAfter := 25, 100
	if testing.Short() {
		// Under emulation the search alone would take minutes: the short
		// run stays in the fp32 phase of momentum auto.
		kills, calibrateAfter = 6, 1000000
	}
	if v := os.Getenv(crashKillsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashKillsEnv, v)
		}
		kills = n
	}
	scale := timeScale()
	state := filepath.Join(t.TempDir(), "state")
	config := filepath.Join(t.TempDir(), "bnnd.yaml")
	text := fmt.Sprintf("source:\n  spec: synthetic-imu,pace=0\nmodel:\n  spec: mlp:32\ntraining:\n  momentum: auto\n  calibrate_after: %d\n  threads: 1\nreplay:\n  budget: 512KiB\n", calibrateAfter)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "-config", config, "--checkpoint-interval", "1s", "--state-dir", state, "--mqtt-broker", "none"}

	rng := rand.New(rand.NewPCG(2026, 12))
	var (
		lastWritten uint64 // step of the newest checkpoint logged as written
		anyWritten  bool
		afterSearch uint64 // step of the checkpoint the first run was killed after
		resumes     int
		behind      int
	)
	check := func(round int, out string) {
		t.Helper()
		if strings.Contains(out, "level=ERROR") || strings.Contains(out, "unusable") {
			t.Fatalf("round %d: the daemon reported a problem:\n%s", round, out)
		}
		if m := resumedLine.FindStringSubmatch(out); m != nil {
			step, _ := strconv.ParseUint(m[1], 10, 64)
			resumes++
			if anyWritten && step < lastWritten {
				behind++
				t.Errorf("round %d: resumed at step %d, behind the checkpoint of step %d written before the kill", round, step, lastWritten)
			}
		} else if anyWritten && strings.Contains(out, `msg="starting a new model"`) {
			t.Fatalf("round %d: started a new model although a checkpoint of step %d was written:\n%s", round, lastWritten, out)
		}
		for _, m := range writtenLine.FindAllStringSubmatch(out, -1) {
			step, _ := strconv.ParseUint(m[1], 10, 64)
			if step < lastWritten {
				t.Errorf("round %d: wrote a checkpoint of step %d after one of step %d", round, step, lastWritten)
			}
			lastWritten, anyWritten = step, true
		}
		if round == 0 {
			afterSearch = lastWritten
		}
	}

	// The encoding race may take longer than the longest life below, and a
	// start after an interrupted race runs it again: the first run is
	// therefore killed only once a checkpoint holds the race's choice (a
	// narrower encoding, or the warm-up format kept). Later kills land in
	// resumes and saves of compact momenta.
	firstSave := regexp.MustCompile(`msg="momentum auto: (encoding chosen|no narrower encoding qualified[^"]*)"(?s:.*)msg="checkpoint written"`)
	if testing.Short() {
		firstSave = writtenLine
	}
	p := startBnnd(t, childOptions{}, args...)
	p.waitLog(120*scale*time.Second, firstSave)
	p.signal(syscall.SIGKILL)
	<-p.exited
	check(0, p.stderr.String())

	start := time.Now()
	for round := 1; round <= kills; round++ {
		p := startBnnd(t, childOptions{}, args...)
		delay := scale * (500*time.Millisecond + time.Duration(rng.Int64N(int64(3500*time.Millisecond))))
		select {
		case <-p.exited:
			t.Fatalf("round %d: the daemon exited by itself (%v) before the kill:\n%s", round, p.err, p.stderr.String())
		case <-time.After(delay):
		}
		p.signal(syscall.SIGKILL)
		<-p.exited
		check(round, p.stderr.String())
	}
	elapsed := time.Since(start)

	// One more start, stopped cleanly once it has resumed.
	p = startBnnd(t, childOptions{}, args...)
	p.waitLog(60*scale*time.Second, resumedLine)
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * scale * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM:\n%s", code, p.stderr.String())
	}
	check(kills+1, p.stderr.String())
	if !testing.Short() && strings.Contains(p.stderr.String(), "fp32 until the encoding search") {
		t.Error("a resumed run went back to fp32 momenta and the encoding search")
	}

	t.Logf("%d kills in %v: %d starts resumed, %d behind the last written checkpoint; steps %d (the first run's last checkpoint) to %d (the end)",
		kills, elapsed.Round(time.Second), resumes, behind, afterSearch, lastWritten)
	if lastWritten <= afterSearch {
		t.Errorf("no progress across the loop: step %d after the search, %d at the end", afterSearch, lastWritten)
	}
	if resumes < kills/2 {
		t.Errorf("only %d of %d starts got as far as resuming", resumes, kills+1)
	}
}
