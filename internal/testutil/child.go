package testutil

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// childCommand re-executes the test binary with env added, for a test whose
// TestMain turns the binary into a child process when env is set. When the
// binary is for another architecture and the kernel cannot run it directly
// (no binfmt_misc), the child runs under the same qemu user emulator that
// 'go test -exec' used.
func childCommand(t *testing.T, env string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	probe := exec.Command(exe, "-test.run=^$", "-test.count=1")
	probe.Env = os.Environ()
	if err := probe.Run(); err != nil && errors.Is(err, syscall.ENOEXEC) {
		emu := map[string]string{"arm64": "qemu-aarch64", "arm": "qemu-arm"}[runtime.GOARCH]
		path, lerr := exec.LookPath(emu)
		if lerr != nil {
			t.Fatalf("cannot run %s (%v) and no %q emulator found: %v", exe, err, emu, lerr)
		}
		cmd = exec.Command(path, exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), env)
	}
	return cmd
}

// startSavingChild starts the child childCommand makes and returns it once
// the child has written its first "saved" line, so the caller can kill it
// at a random moment of its checkpoint loop.
func startSavingChild(t *testing.T, env string, round int) *exec.Cmd {
	t.Helper()
	cmd := childCommand(t, env)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "saved\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("round %d: child did not save a checkpoint: %q %v; stderr: %s", round, line, err, stderr.String())
	}
	return cmd
}

// CrashSavingChild starts the child childCommand makes, lets it save for
// after, then kills it with SIGKILL and waits for it: a crash at a moment
// the caller chose, often in the middle of a save.
func CrashSavingChild(t *testing.T, env string, round int, after time.Duration) {
	t.Helper()
	cmd := startSavingChild(t, env, round)
	time.Sleep(after)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}
