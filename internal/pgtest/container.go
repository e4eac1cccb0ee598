package pgtest

import (
	"context"
	"errors"
)

// startContainer starts PostgreSQL with testcontainers' postgres module.
func startContainer(ctx context.Context) (dsn string, stop func(), err error) {
	return "", nil, errors.New("not built in")
}
