package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Kinds of stream: what happens to an operation during the test period.
const (
	kindUnchanged = "unchanged"
	kindStep      = "step"    // a lasting regression of size at change
	kindRecover   = "recover" // a regression that goes away after recoverAfter
	kindSpike     = "spike"   // x5 for 5 minutes
	kindDrift     = "drift"   // a linear ramp to size over driftOver, then held
	kindPair      = "pair"    // two operations that regress together
	kindDecoy     = "decoy"   // two operations that regress 45 minutes apart
)

// stream is one synthetic operation: a log-normal latency with a daily swing
// and rare x20 outliers, and what happens to it.
type stream struct {
	name   string
	median float64 // microseconds
	sigma  float64
	rate   float64 // samples per minute
	swing  float64 // amplitude of the daily swing (0.2 = +-20%)
	phase  float64

	kind         string
	size         float64 // relative change: 0.5 = +50%
	change       time.Time
	recoverAfter time.Duration
	driftOver    time.Duration
	partner      string // the other operation of a pair or decoy
}

// multiplier is the change applied at t.
func (s *stream) multiplier(t time.Time) float64 {
	if s.kind == kindUnchanged || t.Before(s.change) {
		return 1
	}
	d := t.Sub(s.change)
	switch s.kind {
	case kindRecover:
		if d >= s.recoverAfter {
			return 1
		}
	case kindSpike:
		if d >= 5*time.Minute {
			return 1
		}
		return 5
	case kindDrift:
		if d < s.driftOver {
			return 1 + s.size*float64(d)/float64(s.driftOver)
		}
	}
	return 1 + s.size
}

// changed reports whether the stream has a change a detector should find.
func (s *stream) changed() bool { return s.kind != kindUnchanged }

// regressionEnd is when the change ends (spikes and recoveries), or the zero
// time when it lasts.
func (s *stream) regressionEnd() time.Time {
	switch s.kind {
	case kindRecover:
		return s.change.Add(s.recoverAfter)
	case kindSpike:
		return s.change.Add(5 * time.Minute)
	}
	return time.Time{}
}

// sizeLabel names the change for the report tables.
func (s *stream) sizeLabel() string {
	switch s.kind {
	case kindUnchanged:
		return "none"
	case kindSpike:
		return "spike x5 5m"
	case kindRecover:
		return fmt.Sprintf("+%.0f%% then back", s.size*100)
	case kindDrift:
		return fmt.Sprintf("drift +%.0f%%", s.size*100)
	}
	return fmt.Sprintf("+%.0f%%", s.size*100)
}

// rateTier groups traffic rates for the report.
func rateTier(r float64) string {
	switch {
	case r < 6:
		return "2-5/min"
	case r < 12:
		return "6-11/min"
	}
	return "12-20/min"
}

// plan draws n streams over [start, end): half unchanged, the rest steps of
// each size, recoveries, spikes, drifts, correlated pairs and decoys, with
// changes at known times in the test period [testFrom, end - 6h).
func plan(rng *rand.Rand, n int, testFrom, end time.Time) []*stream {
	sizes := []float64{0.1, 0.2, 0.3, 0.5, 1.0, 2.0}
	var kinds []func(*stream)
	// Half unchanged.
	for range n / 2 {
		kinds = append(kinds, func(s *stream) { s.kind = kindUnchanged })
	}
	rest := n - n/2
	for i := 0; len(kinds) < n; i++ {
		switch k := i % 12; {
		case k < 6:
			size := sizes[k]
			kinds = append(kinds, func(s *stream) { s.kind, s.size = kindStep, size })
		case k == 6:
			kinds = append(kinds, func(s *stream) {
				s.kind, s.size = kindRecover, []float64{0.5, 1.0, 2.0}[rng.IntN(3)]
				s.recoverAfter = time.Duration(60+rng.IntN(120)) * time.Minute
			})
		case k == 7:
			kinds = append(kinds, func(s *stream) { s.kind, s.size = kindSpike, 4 })
		case k == 8:
			kinds = append(kinds, func(s *stream) {
				s.kind, s.size = kindDrift, []float64{0.5, 1.0}[rng.IntN(2)]
				s.driftOver = time.Duration(6+rng.IntN(7)) * time.Hour
			})
		case k == 9 || k == 10:
			kinds = append(kinds, func(s *stream) { s.kind = kindPair })
		default:
			kinds = append(kinds, func(s *stream) { s.kind = kindDecoy })
		}
	}
	_ = rest
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })

	span := end.Add(-6*time.Hour).Sub(testFrom) - 2*time.Hour
	out := make([]*stream, n)
	var pending []*stream // pairs and decoys waiting for a partner
	for i := range n {
		s := &stream{
			name:   fmt.Sprintf("op_%03d", i),
			median: 500 * math.Pow(400, rng.Float64()), // 0.5 ms .. 200 ms, log-uniform
			sigma:  0.3 + 0.7*rng.Float64(),
			rate:   float64(2 + rng.IntN(19)),
			swing:  0.2 * rng.Float64(),
			phase:  2 * math.Pi * rng.Float64(),
			change: testFrom.Add(2*time.Hour + time.Duration(rng.Int64N(int64(span)))).Truncate(time.Second),
		}
		kinds[i](s)
		if s.kind == kindPair || s.kind == kindDecoy {
			s.size = []float64{0.5, 1.0, 2.0}[rng.IntN(3)]
			// Partner with a waiting stream of the same kind.
			matched := false
			for j, p := range pending {
				if p.kind != s.kind {
					continue
				}
				s.partner, p.partner = p.name, s.name
				s.change = p.change
				if s.kind == kindDecoy {
					s.change = p.change.Add(45 * time.Minute)
				}
				pending = append(pending[:j], pending[j+1:]...)
				matched = true
				break
			}
			if !matched {
				pending = append(pending, s)
			}
		}
		out[i] = s
	}
	// A pair or decoy left alone is a plain step.
	for _, p := range pending {
		p.kind = kindStep
	}
	return out
}

// sampleAt draws one duration (microseconds) of s at t.
func (s *stream) sampleAt(rng *rand.Rand, t time.Time) int64 {
	day := float64(t.Unix()%86400) / 86400
	d := s.median * (1 + s.swing*math.Sin(2*math.Pi*day+s.phase)) * s.multiplier(t) * math.Exp(s.sigma*rng.NormFloat64())
	if rng.Float64() < 0.001 {
		d *= 20
	}
	return max(1, int64(math.Round(d)))
}

// poisson draws a Poisson count of mean lambda (small lambda).
func poisson(rng *rand.Rand, lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
