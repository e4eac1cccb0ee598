// Command plcheck runs plpgsql_check over every PL/pgSQL function and trigger
// of the pggit schema on a migrated database (VET_DATABASE_URL, as given by
// internal/cmd/withdb) and fails on any error, and on any warning that is not
// listed, with its reason, in tools/plpgsql_check.allow. It is part of
// `make verify`: the class of defect that broke the original system
// (ambiguous column references, format strings that fail at run time,
// misspelled names in dynamic paths) is caught before a test runs.
//
// Everything runs in one transaction that is rolled back, so the database is
// left as it was (the extension included).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

const allowFile = "tools/plpgsql_check.allow"

type finding struct {
	function string
	level    string
	sqlstate string
	message  string
	line     int
	stmt     string
	detail   string
	hint     string
	query    string
}

func (f finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: line %d (%s): %s [%s]", f.level, f.function, f.line, f.stmt, f.message, f.sqlstate)
	for _, x := range []string{f.detail, f.hint, f.query} {
		if x != "" {
			fmt.Fprintf(&b, "\n    %s", strings.ReplaceAll(x, "\n", "\n    "))
		}
	}
	return b.String()
}

// allowed is one accepted warning: function name and a message substring.
type allowed struct {
	function, message, reason string
	used                      bool
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "plcheck: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	dsn := os.Getenv("VET_DATABASE_URL")
	if dsn == "" {
		return errors.New("VET_DATABASE_URL is not set; run it as: go run ./internal/cmd/withdb -- go run ./internal/cmd/plcheck")
	}
	allow, err := readAllow(allowFile)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back on purpose: nothing is kept
	found, checked, err := check(ctx, tx)
	if err != nil {
		return err
	}

	var errs, unlisted []finding
	accepted := 0
	for _, f := range found {
		if f.level == "error" {
			errs = append(errs, f)
			continue
		}
		if a := match(allow, f); a != nil {
			a.used = true
			accepted++
			continue
		}
		unlisted = append(unlisted, f)
	}
	fmt.Printf("plcheck: %d PL/pgSQL functions checked: %d errors, %d warnings not accepted, %d accepted in %s\n",
		checked, len(errs), len(unlisted), accepted, allowFile)
	for _, f := range errs {
		fmt.Println(f)
	}
	for _, f := range unlisted {
		fmt.Println(f)
	}
	var stale []string
	for _, a := range allow {
		if !a.used {
			stale = append(stale, a.function+" | "+a.message)
		}
	}
	sort.Strings(stale)
	for _, s := range stale {
		fmt.Printf("stale entry in %s (nothing matches it any more; remove it): %s\n", allowFile, s)
	}
	if len(errs) > 0 || len(unlisted) > 0 || len(stale) > 0 {
		return errors.New("fix the findings above, or accept a warning in " + allowFile + " with its reason")
	}
	return nil
}

// check runs plpgsql_check in tx over every PL/pgSQL function of the pggit
// schema (a trigger function once per trigger, with its table and transition
// tables) and returns the findings and how many functions there are.
func check(ctx context.Context, tx pgx.Tx) ([]finding, int, error) {
	if _, err := tx.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS plpgsql_check`); err != nil {
		return nil, 0, fmt.Errorf("plpgsql_check is not installed on the server (Debian: apt-get install postgresql-15-plpgsql-check; .ci/run installs it): %w", err)
	}
	// Every PL/pgSQL function of the schema; a trigger function once per
	// trigger that uses it, with its table and transition tables.
	rows, err := tx.Query(ctx, `
		SELECT p.oid::regprocedure::text, cr.lineno, cr.statement, cr.sqlstate, cr.message, cr.detail, cr.hint, cr.level, cr.query
		FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace
		JOIN pg_language l ON l.oid = p.prolang
		LEFT JOIN pg_trigger tg ON tg.tgfoid = p.oid AND NOT tg.tgisinternal
		CROSS JOIN LATERAL plpgsql_check_function_tb(p.oid,
			relid => coalesce(tg.tgrelid, 0),
			newtable => tg.tgnewtable, oldtable => tg.tgoldtable,
			fatal_errors => false, other_warnings => true, extra_warnings => true,
			performance_warnings => false, security_warnings => true) cr
		WHERE n.nspname = 'pggit' AND l.lanname = 'plpgsql'
		  AND (p.prorettype <> 'trigger'::regtype OR tg.oid IS NOT NULL)
		ORDER BY 1, cr.lineno`)
	if err != nil {
		return nil, 0, err
	}
	var found []finding
	for rows.Next() {
		var f finding
		var stmt, sqlstate, message, detail, hint, level, query *string
		var line *int32
		if err := rows.Scan(&f.function, &line, &stmt, &sqlstate, &message, &detail, &hint, &level, &query); err != nil {
			return nil, 0, err
		}
		f.line = int(deref32(line))
		f.stmt, f.sqlstate, f.message = deref(stmt), deref(sqlstate), deref(message)
		f.detail, f.hint, f.level, f.query = deref(detail), deref(hint), deref(level), deref(query)
		found = append(found, f)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	var checked int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		JOIN pg_language l ON l.oid = p.prolang WHERE n.nspname = 'pggit' AND l.lanname = 'plpgsql'`).Scan(&checked); err != nil {
		return nil, 0, err
	}

	return found, checked, nil
}

func match(allow []*allowed, f finding) *allowed {
	for _, a := range allow {
		name := strings.TrimPrefix(f.function, "pggit.")
		if strings.HasPrefix(name, a.function+"(") && strings.Contains(f.message, a.message) {
			return a
		}
	}
	return nil
}

// readAllow reads "function | message substring | reason" lines; # starts a
// comment.
func readAllow(path string) ([]*allowed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*allowed
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "|")
		if len(parts) != 3 || strings.TrimSpace(parts[2]) == "" {
			return nil, fmt.Errorf("%s:%d: want \"function | message | reason\", with a reason", path, n)
		}
		out = append(out, &allowed{function: strings.TrimSpace(parts[0]), message: strings.TrimSpace(parts[1]), reason: strings.TrimSpace(parts[2])})
	}
	return out, sc.Err()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func deref32(i *int32) int32 {
	if i == nil {
		return 0
	}
	return *i
}
