package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/pggit/pggit-monitor/internal/status"
	"github.com/pggit/pggit-monitor/monitor"
)

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "status", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	pool, err := connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := status.Print(ctx, pool, stdout); err != nil {
		return err
	}
	client, err := monitor.New(pool, &monitor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if err := printRetention(ctx, client, stdout); err != nil {
		return err
	}
	return printPartitions(ctx, client, stdout)
}
