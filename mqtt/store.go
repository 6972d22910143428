package mqtt

import "github.com/eclipse/paho.mqtt.golang/packets"

// discardStore is a paho Store that keeps nothing. paho's default memory
// store keeps every unacknowledged QoS 1 message across a disconnect and
// resends it on reconnect: an unbounded queue, and stale data. Here
// telemetry is latest-value (the publisher resends the latest state after
// a reconnect) and status is republished on connect, so in-flight
// messages are deliberately dropped with the connection. (It also avoids
// a data race in paho v1.5.1 between resuming stored messages and the new
// connection's writer.)
type discardStore struct{}

func (discardStore) Open()                             {}
func (discardStore) Put(string, packets.ControlPacket) {}
func (discardStore) Get(string) packets.ControlPacket  { return nil }
func (discardStore) All() []string                     { return nil }
func (discardStore) Del(string)                        {}
func (discardStore) Close()                            {}
func (discardStore) Reset()                            {}
