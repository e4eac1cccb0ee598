package pgserver

import (
	"context"
	"errors"
	"fmt"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
)

// ContainerImage is the image used when Provision falls back to
// testcontainers.
const ContainerImage = "postgres:15-alpine"

// StartContainer starts PostgreSQL with testcontainers' postgres module. It
// needs a reachable Docker daemon.
func StartContainer(ctx context.Context) (dsn string, stop func(), err error) {
	c, err := postgres.Run(ctx, ContainerImage,
		postgres.WithDatabase("postgres"),
		postgres.WithUsername("postgres"),
		postgres.WithPassword("postgres"),
		postgres.BasicWaitStrategies(),
	)
	if err != nil {
		if c != nil {
			_ = testcontainers.TerminateContainer(c)
		}
		return "", nil, fmt.Errorf("starting %s: %w", ContainerImage, err)
	}
	dsn, err = c.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return "", nil, err
	}
	return dsn, func() { _ = testcontainers.TerminateContainer(c) }, nil
}

// Backend names a way to get a PostgreSQL server.
type Backend string

// Backends of Provision.
const (
	// BackendAny tries the local binaries, then a container.
	BackendAny Backend = ""
	// BackendLocal uses the local server binaries only.
	BackendLocal Backend = "local"
	// BackendContainer uses testcontainers only.
	BackendContainer Backend = "container"
)

// Provision starts a throwaway PostgreSQL server: a cluster from the local
// binaries, else a testcontainers container when a Docker daemon is
// reachable (backend forces one of them). It returns the URL of its
// "postgres" database and a function that stops the server. urlVar names the
// environment variable that would have given a server (DATABASE_URL,
// TEST_DATABASE_URL), for the error that names all three ways.
func Provision(ctx context.Context, backend Backend, opts *Options, urlVar string) (dsn string, stop func(), err error) {
	switch backend {
	case BackendAny, BackendLocal, BackendContainer:
	default:
		return "", nil, fmt.Errorf("pgserver: backend must be %q or %q (or empty for either), got %q", BackendLocal, BackendContainer, backend)
	}
	localErr := errors.New("not tried: the container backend was asked for")
	if backend != BackendContainer {
		srv, err := Start(ctx, opts)
		if err == nil {
			return srv.DSN("postgres"), func() { _ = srv.Stop() }, nil
		}
		if backend == BackendLocal {
			return "", nil, err
		}
		localErr = err
	}
	dsn, stop, err = StartContainer(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("no PostgreSQL server: set %s to a postgres:// URL, or install the PostgreSQL server binaries (local cluster: %v), or run a Docker daemon for testcontainers (container: %v)", urlVar, localErr, err)
	}
	return dsn, stop, nil
}
