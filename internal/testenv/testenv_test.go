package testenv_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"tollgate/internal/testenv"
)

func TestMustPostgresGivesAnEmptyDatabase(t *testing.T) {
	u := testenv.MustPostgres(t)
	conn, err := pgx.Connect(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM information_schema.tables WHERE table_schema='public'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("fresh database has %d tables", n)
	}
}

func TestMustRedisGivesAPrefix(t *testing.T) {
	u, p := testenv.MustRedis(t)
	if u == "" || p == "" {
		t.Fatal("empty url or prefix")
	}
}
