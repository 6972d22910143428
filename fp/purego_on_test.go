//go:build purego

package fp

const puregoBuild = true
