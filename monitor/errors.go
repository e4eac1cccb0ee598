package monitor

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQLStateInvalidParameterValue is the SQLSTATE of every bad-argument error,
// whether the database or this package found it.
const SQLStateInvalidParameterValue = "22023"

var (
	// ErrNotFound is returned when the requested row does not exist.
	ErrNotFound = errors.New("pggit: not found")

	// ErrInvalidArgument matches every *ArgumentError with errors.Is.
	ErrInvalidArgument = errors.New("pggit: invalid argument")

	// ErrRecalcFailed is returned (wrapped) when a baseline recalculation run
	// failed as a whole; the run is still recorded with status FAILED.
	ErrRecalcFailed = errors.New("pggit: baseline recalculation failed")

	// ErrBufferFull is returned by Recorder.Record when MaxBuffered samples
	// are already held in memory (the database is slow or down). The sample
	// is dropped and counted in RecorderStats.Dropped.
	ErrBufferFull = errors.New("pggit: recorder buffer full, sample dropped")

	// ErrRecorderClosed is returned by Recorder.Record after Close.
	ErrRecorderClosed = errors.New("pggit: recorder closed")
)

// ArgumentError reports a bad argument: which one, and what is allowed. It
// carries SQLSTATE 22023 (invalid_parameter_value) whether the database
// raised it or this package caught it before any round trip.
type ArgumentError struct {
	// Argument names the bad argument: a Go field (LookbackDays) or an SQL
	// parameter (p_lookback_days).
	Argument string
	// Message says what is allowed and what was given.
	Message string
	// SQLState is always 22023.
	SQLState string

	err error // the *pgconn.PgError, when the database raised it
}

func (e *ArgumentError) Error() string {
	return fmt.Sprintf("pggit: invalid argument: %s (SQLSTATE %s)", e.Message, e.SQLState)
}

// Is reports whether target is ErrInvalidArgument.
func (e *ArgumentError) Is(target error) bool { return target == ErrInvalidArgument }

// Unwrap returns the database error, if any.
func (e *ArgumentError) Unwrap() error { return e.err }

func argError(argument, format string, args ...any) *ArgumentError {
	return &ArgumentError{
		Argument: argument,
		Message:  argument + " " + fmt.Sprintf(format, args...),
		SQLState: SQLStateInvalidParameterValue,
	}
}

// mapError turns driver errors into this package's errors, in one place.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == SQLStateInvalidParameterValue {
		return &ArgumentError{
			Argument: pgErr.ColumnName,
			Message:  pgErr.Message,
			SQLState: pgErr.Code,
			err:      err,
		}
	}
	return fmt.Errorf("pggit: %w", err)
}
