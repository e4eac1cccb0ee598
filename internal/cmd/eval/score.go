package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// alertRow is what scoring needs of an alert.
type alertRow struct {
	id          int64
	op          string
	typ         string
	severity    string
	firstSeen   time.Time
	detected    time.Time
	resolved    time.Time
	members     []string // CORRELATION
	explainedBy *stream
}

// outcome is how one changed stream was (or was not) found.
type outcome struct {
	s          *stream
	detected   bool
	delay      time.Duration
	cpErr      time.Duration
	severity   string // worst severity of its true alerts
	resolvedOK bool   // recover/spike: every true alert resolved within 1 h of the end
	refFound   bool   // the per-sample rule opened a new alert after the change
	refDelay   time.Duration
	refCrit    bool
}

type results struct {
	e        *evaluation
	alerts   []*alertRow
	outcomes []*outcome
	// false alerts, by whether the operation is unchanged
	falseUnchanged, falseChanged int
	critUnchanged                int
	trueAlerts                   int
	refFalseUnchanged            int
	falseByType                  map[string]int
	refCritUnchanged             int
	pairsGrouped, pairs          int
	decoysGrouped, decoys        int
	elapsed                      time.Duration
}

func (e *evaluation) score(ctx context.Context) (*results, error) {
	byName := map[string]*stream{}
	for _, s := range e.streams {
		byName[s.name] = s
	}
	r := &results{e: e, falseByType: map[string]int{}}
	rows, err := e.db.Query(ctx, `
		SELECT alert_id, operation_type, alert_type, severity, first_seen_at, detected_at,
		       coalesce(resolved_at, '9999-12-31'),
		       coalesce((SELECT array_agg(m ->> 'operation_type') FROM jsonb_array_elements(details -> 'members') m), '{}')
		FROM pggit.performance_alerts
		WHERE detected_at IS NOT NULL AND detected_at > $1
		ORDER BY alert_id`, e.testFrom)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		a := &alertRow{}
		if err := rows.Scan(&a.id, &a.op, &a.typ, &a.severity, &a.firstSeen, &a.detected, &a.resolved, &a.members); err != nil {
			return nil, err
		}
		r.alerts = append(r.alerts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	// Which alerts a change explains: detected after the change, and for
	// transient changes no later than an hour after they ended.
	for _, a := range r.alerts {
		if a.typ == "CORRELATION" {
			continue
		}
		s := byName[a.op]
		if s != nil && s.changed() && !a.detected.Before(s.change) {
			if end := s.regressionEnd(); end.IsZero() || a.detected.Before(end.Add(time.Hour)) {
				a.explainedBy = s
			}
		}
		if a.explainedBy == nil && r.e.o.verbose {
			kind := "unchanged"
			if s != nil {
				kind = s.kind + " " + s.sizeLabel() + " at " + s.change.Format("01-02 15:04")
			}
			r.e.logf("false alert %d: %s (%s, %.1f/min) %s %s first seen %s detected %s",
				a.id, a.op, kind, s.rate, a.typ, a.severity, a.firstSeen.Format("01-02 15:04"), a.detected.Format("01-02 15:04"))
		}
		switch {
		case a.explainedBy != nil:
			r.trueAlerts++
		case s == nil || !s.changed():
			r.falseUnchanged++
			r.falseByType[a.typ+" "+a.severity]++
			if a.severity == "CRITICAL" {
				r.critUnchanged++
			}
		default:
			r.falseChanged++
		}
	}
	for _, s := range e.streams {
		if !s.changed() {
			continue
		}
		o := &outcome{s: s, resolvedOK: true}
		for _, a := range r.alerts {
			if a.explainedBy != s {
				continue
			}
			if !o.detected || a.detected.Sub(s.change) < o.delay {
				o.delay = a.detected.Sub(s.change)
				o.cpErr = a.firstSeen.Sub(s.change)
			}
			o.detected = true
			if rank(a.severity) > rank(o.severity) {
				o.severity = a.severity
			}
			if s.kind == kindStep && s.size <= 0.3 && a.severity == "CRITICAL" {
				r.e.logf("CRITICAL on %s (%s, %.0f/min, sigma %.2f): alert %d %s", s.name, s.sizeLabel(), s.rate, s.sigma, a.id, a.typ)
			}
			if end := s.regressionEnd(); !end.IsZero() && a.resolved.After(end.Add(time.Hour)) {
				o.resolvedOK = false
				r.e.logf("not closed within 1 h: alert %d %s %s (%s, ended %s, %.1f/min, sigma %.2f) resolved %s",
					a.id, a.op, a.typ, s.sizeLabel(), end.Format("01-02 15:04"), s.rate, s.sigma, a.resolved.Format("01-02 15:04"))
			}
		}
		r.outcomes = append(r.outcomes, o)
		if s.kind == kindPair || s.kind == kindDecoy {
			grouped := false
			for _, a := range r.alerts {
				if a.typ == "CORRELATION" && slices.Contains(a.members, s.name) && slices.Contains(a.members, s.partner) {
					grouped = true
				}
			}
			if s.name < s.partner {
				if s.kind == kindPair {
					r.pairs++
					if grouped {
						r.pairsGrouped++
					}
				} else {
					r.decoys++
					if grouped {
						r.decoysGrouped++
					}
				}
			}
		}
	}
	if err := r.perSampleRule(ctx, byName); err != nil {
		return nil, err
	}
	return r, nil
}

// perSampleRule replays the seed's rule on the same samples: the baseline
// p99 of the history before the test period; the first sample >= 2x p99 opens
// the operation's alert (CRITICAL from 5x), which never closes.
func (r *results) perSampleRule(ctx context.Context, byName map[string]*stream) error {
	rows, err := r.e.db.Query(ctx, `
		WITH b AS (
			SELECT operation_type, percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_microseconds) AS p99
			FROM pggit.performance_metrics WHERE recorded_at < $1 GROUP BY 1)
		SELECT m.operation_type,
		       min(m.recorded_at) FILTER (WHERE m.duration_microseconds >= 2 * b.p99),
		       min(m.recorded_at) FILTER (WHERE m.duration_microseconds >= 5 * b.p99)
		FROM pggit.performance_metrics m JOIN b USING (operation_type)
		WHERE m.recorded_at >= $1
		GROUP BY 1`, r.e.testFrom)
	if err != nil {
		return err
	}
	defer rows.Close()
	byOp := map[string]*outcome{}
	for _, o := range r.outcomes {
		byOp[o.s.name] = o
	}
	for rows.Next() {
		var op string
		var first, crit *time.Time
		if err := rows.Scan(&op, &first, &crit); err != nil {
			return err
		}
		s := byName[op]
		if s == nil || first == nil {
			continue
		}
		if !s.changed() {
			r.refFalseUnchanged++
			if crit != nil {
				r.refCritUnchanged++
			}
			continue
		}
		// An alert opened before the change stays open and hides it.
		if o := byOp[op]; o != nil && !first.Before(s.change) {
			o.refFound = true
			o.refDelay = first.Sub(s.change)
			o.refCrit = crit != nil
		}
	}
	return rows.Err()
}

func rank(sev string) int {
	switch sev {
	case "CRITICAL":
		return 3
	case "WARNING":
		return 2
	case "INFO":
		return 1
	}
	return 0
}

func (r *results) opWeeks(unchangedOnly bool) float64 {
	n := 0
	for _, s := range r.e.streams {
		if !unchangedOnly || !s.changed() {
			n++
		}
	}
	return float64(n) * r.e.end.Sub(r.e.testFrom).Hours() / (24 * 7)
}

type group struct {
	n, within1h, within3h, ever int
	delays                      []time.Duration
	cpErrs                      []time.Duration
	sev                         map[string]int
	resolvedOK, transient       int
	ref1h, refEver              int
}

func median(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

func (r *results) print(w io.Writer, o *options) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) {
		if o.md {
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
			return
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	sep := func(n int) {
		if o.md {
			fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", n))
		}
	}
	flush := func() { _ = tw.Flush() }

	fmt.Fprintf(w, "%d operations, %d days of history then %d days judged, %d samples, seed %d (%s: writing %s, detection %s, recalculation %s)\n\n",
		len(r.e.streams), o.warmup, o.days, r.e.samples, o.seed, r.elapsed.Round(time.Second),
		r.e.loadTime.Round(time.Second), r.e.detectTime.Round(time.Second), r.e.recalcTime.Round(time.Second))

	// By change size.
	bySize := map[string]*group{}
	var sizes []string
	for _, oc := range r.outcomes {
		k := oc.s.sizeLabel()
		g := bySize[k]
		if g == nil {
			g = &group{sev: map[string]int{}}
			bySize[k] = g
			sizes = append(sizes, k)
		}
		g.add(oc)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizeOrder(sizes[i]) < sizeOrder(sizes[j]) })
	fmt.Fprintln(w, "Recall and delay by change (detector alerts; reference: the per-sample rule)")
	fmt.Fprintln(w)
	row("change", "ops", "within 1 h", "within 3 h", "ever", "median delay", "p90 delay", "median change-point error", "CRITICAL / WARNING", "per-sample rule: within 1 h", "per-sample rule: ever")
	sep(11)
	for _, k := range sizes {
		g := bySize[k]
		row(k, fmt.Sprint(g.n), frac(g.within1h, g.n), frac(g.within3h, g.n), frac(g.ever, g.n),
			label(median(g.delays, 0.5)), label(median(g.delays, 0.9)), label(median(abs(g.cpErrs), 0.5)),
			fmt.Sprintf("%d / %d", g.sev["CRITICAL"], g.sev["WARNING"]), frac(g.ref1h, g.n), frac(g.refEver, g.n))
	}
	flush()
	fmt.Fprintln(w)

	// Steps by traffic.
	fmt.Fprintln(w, "Steps of +50% or more, by traffic")
	fmt.Fprintln(w)
	row("traffic", "ops", "within 1 h", "median delay", "p90 delay", "per-sample rule: within 1 h")
	sep(6)
	byRate := map[string]*group{}
	for _, oc := range r.outcomes {
		if !(oc.s.kind == kindStep || oc.s.kind == kindPair || oc.s.kind == kindDecoy) || oc.s.size < 0.5 {
			continue
		}
		k := rateTier(oc.s.rate)
		if byRate[k] == nil {
			byRate[k] = &group{sev: map[string]int{}}
		}
		byRate[k].add(oc)
	}
	for _, k := range []string{"2-5/min", "6-11/min", "12-20/min"} {
		if g := byRate[k]; g != nil {
			row(k, fmt.Sprint(g.n), frac(g.within1h, g.n), label(median(g.delays, 0.5)), label(median(g.delays, 0.9)), frac(g.ref1h, g.n))
		}
	}
	flush()
	fmt.Fprintln(w)

	// Totals.
	uw, aw := r.opWeeks(true), r.opWeeks(false)
	all := r.trueAlerts + r.falseUnchanged + r.falseChanged
	detected, changed := 0, 0
	var transient, transientOK int
	for _, oc := range r.outcomes {
		if oc.s.kind == kindSpike {
			continue // a spike need not be found
		}
		changed++
		if oc.detected {
			detected++
		}
	}
	for _, oc := range r.outcomes {
		if oc.s.kind == kindRecover || oc.s.kind == kindSpike {
			transient++
			if oc.resolvedOK {
				transientOK++
			}
		}
	}
	prec := ratio(r.trueAlerts, all)
	rec := ratio(detected, changed)
	f1 := 0.0
	if prec+rec > 0 {
		f1 = 2 * prec * rec / (prec + rec)
	}
	moved := 0
	var movedNotes []string
	for _, p := range r.e.protected {
		if p.before > 0 && abs1(p.after/p.before-1) >= 0.15 {
			moved++
			what := "?"
			for _, st := range r.e.streams {
				if st.name == p.op {
					what = fmt.Sprintf("%s %+.0f%% at %s", st.kind, 100*st.size, st.change.UTC().Format("01-02 15:04"))
				}
			}
			movedNotes = append(movedNotes, fmt.Sprintf("%s (%s): p99 %.0f -> %.0f us", p.op, what, p.before, p.after))
		}
	}
	fmt.Fprintln(w, "Totals")
	fmt.Fprintln(w)
	row("metric", "detectors", "per-sample rule")
	sep(3)
	row("false alerts per unchanged operation-week", fmt.Sprintf("%.3f (%d in %.1f op-weeks)", float64(r.falseUnchanged)/uw, r.falseUnchanged, uw),
		fmt.Sprintf("%.3f (%d; an alert never closes)", float64(r.refFalseUnchanged)/uw, r.refFalseUnchanged))
	row("CRITICAL alerts on unchanged operations", fmt.Sprint(r.critUnchanged), fmt.Sprint(r.refCritUnchanged))
	var kinds []string
	for k, n := range r.falseByType {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	row("false alerts on unchanged operations, by type", strings.Join(kinds, ", "), "-")
	row("false alerts per operation-week, all operations", fmt.Sprintf("%.3f", float64(r.falseUnchanged+r.falseChanged)/aw), "-")
	row("precision (alerts explained by a change)", fmt.Sprintf("%.3f (%d of %d)", prec, r.trueAlerts, all), "-")
	row("recall (changes found, spikes aside)", fmt.Sprintf("%.3f (%d of %d)", rec, detected, changed), "-")
	row("F1", fmt.Sprintf("%.3f", f1), "-")
	row("recoveries and spikes closed within 1 h of their end", frac(transientOK, transient), "never")
	row("regressed baselines moved >= 15% by a recalculation", fmt.Sprintf("%d of %d", moved, len(r.e.protected)), "-")
	row("correlated pairs grouped", frac(r.pairsGrouped, r.pairs), "-")
	row("decoy pairs (45 min apart) grouped", frac(r.decoysGrouped, r.decoys), "-")
	flush()
	if len(movedNotes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Regressed baselines a recalculation moved by 15% or more: "+strings.Join(movedNotes, "; ")+".")
	}
	return nil
}

func (g *group) add(oc *outcome) {
	g.n++
	if oc.detected {
		g.ever++
		g.delays = append(g.delays, oc.delay)
		g.cpErrs = append(g.cpErrs, oc.cpErr)
		g.sev[oc.severity]++
		if oc.delay <= time.Hour {
			g.within1h++
		}
		if oc.delay <= 3*time.Hour {
			g.within3h++
		}
	}
	if oc.refFound {
		g.refEver++
		if oc.refDelay <= time.Hour {
			g.ref1h++
		}
	}
}

func sizeOrder(k string) int {
	for i, p := range []string{"+10%", "+20%", "+30%", "+50%", "+100%", "+200%", "drift", "+50% then", "+100% then", "+200% then", "spike"} {
		if strings.HasPrefix(k, p) {
			return i
		}
	}
	return 99
}

func frac(a, b int) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f (%d/%d)", float64(a)/float64(b), a, b)
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func abs(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = max(d, -d)
	}
	return out
}

func abs1(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
