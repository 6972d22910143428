// Package daemon runs bnnd as a long-lived service ('bnnd run'). Its
// concerns sit in subpackages and files a reader finds by name:
//
//   - config: the configuration, its YAML and its validation;
//   - checkpoint: the store of checkpoint files (atomic saves, fallback,
//     archive, listing and restore);
//   - replay: the reservoir of labelled samples under a byte budget;
//   - run.go: the lifecycle (source, store, telemetry, signals, watchdog);
//   - learn.go: the learning loop (samples in, steps, the encoding race,
//     held-out scoring);
//   - state.go: the checkpoint sections, written and decoded side by side;
//   - resume.go: choosing and adopting a checkpoint at start;
//   - classes.go: classes and labels; run_mqtt.go: telemetry and commands.
//
// It holds no math kernels; the network and the optimizer live in bnn/ and
// bop/, telemetry in mqtt/.
package daemon
