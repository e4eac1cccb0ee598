package monitor

import (
	"context"
	"time"
)

// MailForTest sends msg ("Subject: ..." line, blank line, body) to the email
// webhook w exactly as a delivery does, and returns the outcome (sent, retry,
// dead) and the error that would be recorded. It lets tests hand the mailer
// subjects that the database no longer lets an alert carry.
func (d *Dispatcher) MailForTest(ctx context.Context, w *Webhook, msg, dedup string) (outcome, errText string) {
	res := d.mail(ctx, w, msg, dedup)
	return res.outcome, res.err
}

// RecordUnchecked buffers s without validating it: a sample this package
// would refuse, as if it came from a client whose rules are behind the
// database's. Tests use it to check what the Recorder does with a sample the
// database refuses.
func (r *Recorder) RecordUnchecked(s Sample) error {
	return r.enqueue(s.toRow(time.Now()))
}
