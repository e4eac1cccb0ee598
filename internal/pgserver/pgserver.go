// Package pgserver starts a throwaway PostgreSQL cluster from the local server
// binaries (initdb, pg_ctl): for the test harness, the demo and the benchmarks.
//
// The cluster is tuned for speed, not durability (fsync off, no WAL flush
// wait) and listens on 127.0.0.1 on a free port. When the process runs as root
// (initdb refuses root), the cluster runs as the "postgres" system user.
package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrNoBinaries is returned when no initdb/pg_ctl can be found.
var ErrNoBinaries = errors.New("pgserver: PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql) or set TEST_DATABASE_URL / DATABASE_URL")

// Server is a running throwaway cluster.
type Server struct {
	dir     string
	data    string
	bin     string
	port    int
	runAs   string
	stopped bool
}

// Options tune Start. The zero value is valid.
type Options struct {
	// Settings are extra server settings (name -> value), e.g. work_mem.
	Settings map[string]string
}

// FindBinDir returns the directory holding initdb and pg_ctl.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(initdbPath string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdbPath))))
	return v
}

// Start creates and starts a new cluster. Stop removes it.
func Start(ctx context.Context, opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pggit-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	s := &Server{dir: dir, data: filepath.Join(dir, "data"), bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, errors.New("pgserver: running as root and there is no 'postgres' system user to run the cluster as (initdb refuses root)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgserver: %w", err)
		}
		s.runAs = "postgres"
	}
	if out, err := s.run(ctx, "initdb", "-D", s.data, "-U", "postgres", "--auth=trust",
		"--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("pgserver: initdb: %w\n%s", err, out)
	}

	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": dir,
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"max_connections":         "300",
		"shared_buffers":          "256MB",
		"max_wal_size":            "4GB",
		"checkpoint_timeout":      "30min",
		"log_min_messages":        "warning",
		"log_min_error_statement": "panic",
		"autovacuum":              "on",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			s.cleanup()
			return nil, err
		}
		settings["port"] = strconv.Itoa(port)
		var conf strings.Builder
		keys := make([]string, 0, len(settings))
		for k := range settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&conf, "%s = '%s'\n", k, settings[k])
		}
		if err := os.WriteFile(filepath.Join(s.data, "postgresql.auto.conf"), []byte(conf.String()), 0o600); err != nil {
			s.cleanup()
			return nil, fmt.Errorf("pgserver: %w", err)
		}
		if s.runAs != "" {
			_, _ = s.runRoot(ctx, "chown", s.runAs, filepath.Join(s.data, "postgresql.auto.conf"))
		}
		out, err := s.run(ctx, "pg_ctl", "-D", s.data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start")
		if err == nil {
			s.port = port
			return s, nil
		}
		logTail, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		last = fmt.Errorf("pgserver: pg_ctl start: %w\n%s\n%s", err, out, tail(logTail, 2000))
	}
	s.cleanup()
	return nil, last
}

// DSN returns a connection string for database name on the cluster.
func (s *Server) DSN(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, database)
}

// Port returns the TCP port the cluster listens on.
func (s *Server) Port() int { return s.port }

// Pause stops the cluster in fast mode and keeps its files; Resume starts it
// again on the same port. Together: a database restart of any length.
func (s *Server) Pause(ctx context.Context) error {
	out, err := s.run(ctx, "pg_ctl", "-D", s.data, "-m", "fast", "-w", "-t", "60", "stop")
	if err != nil {
		return fmt.Errorf("pgserver: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Resume starts a cluster that Pause stopped.
func (s *Server) Resume(ctx context.Context) error {
	out, err := s.run(ctx, "pg_ctl", "-D", s.data, "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "60", "start")
	if err != nil {
		return fmt.Errorf("pgserver: pg_ctl start: %w\n%s", err, out)
	}
	return nil
}

// Stop stops the cluster and removes its files.
func (s *Server) Stop() error {
	if s == nil || s.stopped {
		return nil
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.run(ctx, "pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop")
	s.cleanup()
	if err != nil {
		return fmt.Errorf("pgserver: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

func (s *Server) cleanup() { _ = os.RemoveAll(s.dir) }

func (s *Server) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, prog)
	var cmd *exec.Cmd
	if s.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = s.dir
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

func (s *Server) runRoot(ctx context.Context, prog string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, prog, args...).CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
