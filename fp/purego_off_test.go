//go:build !purego

package fp

const puregoBuild = false
