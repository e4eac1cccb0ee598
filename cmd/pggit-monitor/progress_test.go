package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestProgressOnlyOnATerminal(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	stop := progress(&b, false, "recalculating baselines")
	stop()
	require.Empty(t, b.String())

	stop = progress(&b, true, "recalculating baselines")
	stop()
	require.Equal(t, "\rrecalculating baselines...\r\033[K", b.String())
}
