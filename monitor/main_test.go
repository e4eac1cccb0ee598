package monitor_test

import (
	"testing"

	"github.com/pggit/pggit-monitor/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
