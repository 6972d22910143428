package systemd_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/bnnd/bnnd/systemd"
)

// The daemon's side of the protocol: READY once everything is up, progress
// every step, a status line now and then, STOPPING on the way out. Outside
// systemd (NOTIFY_SOCKET unset) every call is a no-op.
func ExampleNotifier() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	notifier, err := systemd.New(systemd.Options{Logger: slog.Default()})
	if err != nil {
		slog.Error("systemd environment", "err", err)
		return
	}
	defer notifier.Close()

	// ... open the source, load or resume the model, connect telemetry ...
	if err := notifier.Ready(); err != nil {
		slog.Warn("sd_notify", "err", err)
	}
	for step := 1; ctx.Err() == nil; step++ {
		// trainOneStep()
		notifier.Progress()
		if step%1000 == 0 {
			notifier.Status(fmt.Sprintf("step %d, holdout accuracy %.3f", step, 0.93))
		}
		if step == 3000 {
			cancel() // SIGTERM in the real daemon
		}
	}
	notifier.Stopping()
	// ... write the final checkpoint ...
}
