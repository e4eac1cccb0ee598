package monitor_test

import (
	"testing"

	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

func TestMain(m *testing.M) {
	monitortest.Main(m, monitortest.CheckGoroutines(), monitortest.EmptySearchPath())
}
