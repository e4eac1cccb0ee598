package main

import (
	"context"
	"io"

	"github.com/pggit/pggit-monitor/internal/status"
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
	return status.Print(ctx, pool, stdout)
}
