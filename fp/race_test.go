//go:build race

package fp

// raceEnabled reports whether the tests run under the race detector, which
// slows the exhaustive loops down; they then split the work more finely.
const raceEnabled = true
