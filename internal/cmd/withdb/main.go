// Command withdb runs a command with VET_DATABASE_URL pointing at a freshly
// migrated throwaway database, for `sqlc vet` (rule sqlc/db-prepare):
//
//	go run ./internal/cmd/withdb -- go tool -modfile=tools/go.mod sqlc vet
//
// When VET_DATABASE_URL is already set, the command runs against it as is.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pggit/pggit-monitor/internal/pgserver"
	"github.com/pggit/pggit-monitor/migrate"
)

func main() {
	if err := run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintf(os.Stderr, "withdb: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return errors.New("usage: withdb -- COMMAND [ARGS...]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if os.Getenv("VET_DATABASE_URL") == "" {
		srv, err := pgserver.Start(ctx, nil)
		if err != nil {
			return err
		}
		defer srv.Stop()
		dsn := srv.DSN("postgres")
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return err
		}
		_, err = migrate.Up(ctx, pool, nil)
		pool.Close()
		if err != nil {
			return err
		}
		os.Setenv("VET_DATABASE_URL", dsn)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}
