package mqtt

import "testing"

// BenchmarkPublish measures what Publish costs the training loop: marshal
// plus mailbox swap, with no broker at all (it never waits for one).
func BenchmarkPublish(b *testing.B) {
	c, err := New(Config{DeviceID: "bench"}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	type progress struct {
		Step           int     `json:"step"`
		SamplesSeen    int     `json:"samples_seen"`
		SamplesTrained int     `json:"samples_trained"`
		PrequentialAcc float64 `json:"prequential_acc"`
		HoldoutAcc     float64 `json:"holdout_acc"`
		Loss           float64 `json:"loss"`
		SamplesPerS    float64 `json:"samples_per_s"`
		FlipsPerStep   float64 `json:"flips_per_step"`
	}
	b.Run("struct/progress", func(b *testing.B) {
		b.ReportAllocs()
		p := progress{Step: 1, SamplesSeen: 1000, PrequentialAcc: 0.9, SamplesPerS: 300}
		for i := 0; i < b.N; i++ {
			p.Step = i
			if err := c.Publish(TopicProgress, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bytes/progress", func(b *testing.B) {
		b.ReportAllocs()
		payload := []byte(`{"step":1,"samples_seen":1000,"prequential_acc":0.9,"samples_per_s":300}`)
		for i := 0; i < b.N; i++ {
			if err := c.Publish(TopicProgress, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}
