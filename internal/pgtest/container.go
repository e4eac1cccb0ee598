package pgtest

import (
	"context"
	"fmt"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
)

// ContainerImage is the image used when the harness falls back to
// testcontainers.
const ContainerImage = "postgres:15-alpine"

// startContainer starts PostgreSQL with testcontainers' postgres module. It
// needs a reachable Docker daemon.
func startContainer(ctx context.Context) (dsn string, stop func(), err error) {
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
