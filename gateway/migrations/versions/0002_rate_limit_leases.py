"""rate limits shared by every gateway replica: a token's 10-second window and day, leased in slices

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# One row per token: what was granted in each of the last ten seconds (counts[10] is `newest_second`) and
# today. A replica leases a slice of the quota with one call of corral_rate_lease, then admits that many
# requests without asking again; what it did not use within the second goes back with its next lease.
UPGRADE = [
    """
    CREATE TABLE rate_limit_windows (
        token_id bigint PRIMARY KEY,
        newest_second bigint NOT NULL,
        counts integer[] NOT NULL,
        day integer NOT NULL,
        day_count bigint NOT NULL
    )
    """,
    """
    CREATE FUNCTION corral_rate_lease(p_token bigint, p_now double precision, p_want integer, p_per_10s integer,
                                      p_daily integer, p_refund_second bigint, p_refund integer)
    RETURNS TABLE (granted integer, window_used integer, day_used bigint, retry_after integer)
    LANGUAGE plpgsql AS $$
    DECLARE
        v_second bigint := floor(p_now);
        v_day integer := floor(p_now / 86400);
        v_row rate_limit_windows%ROWTYPE;
        v_shift bigint;
        v_index integer;
        v_available bigint;
    BEGIN
        INSERT INTO rate_limit_windows VALUES (p_token, v_second, array_fill(0, ARRAY[10]), v_day, 0)
            ON CONFLICT (token_id) DO NOTHING;
        SELECT * INTO v_row FROM rate_limit_windows WHERE token_id = p_token FOR UPDATE;

        -- Slide the window to now (a replica whose clock lags uses the newest second already seen).
        v_shift := v_second - v_row.newest_second;
        IF v_shift >= 10 THEN
            v_row.counts := array_fill(0, ARRAY[10]);
            v_row.newest_second := v_second;
        ELSIF v_shift > 0 THEN
            v_row.counts := v_row.counts[v_shift + 1:10] || array_fill(0, ARRAY[v_shift::integer]);
            v_row.newest_second := v_second;
        END IF;
        IF v_day > v_row.day THEN
            v_row.day := v_day;
            v_row.day_count := 0;
        END IF;

        -- What the replica leased earlier and did not use goes back, if its second is still in the window.
        IF p_refund > 0 THEN
            v_index := 10 - (v_row.newest_second - p_refund_second)::integer;
            IF v_index BETWEEN 1 AND 10 THEN
                v_row.counts[v_index] := greatest(0, v_row.counts[v_index] - p_refund);
            END IF;
            IF floor(p_refund_second / 86400.0) = v_row.day THEN
                v_row.day_count := greatest(0, v_row.day_count - p_refund);
            END IF;
        END IF;

        window_used := (SELECT coalesce(sum(c), 0) FROM unnest(v_row.counts) AS c);
        v_available := p_want;
        IF p_per_10s > 0 THEN
            v_available := least(v_available, p_per_10s - window_used);
        END IF;
        IF p_daily > 0 THEN
            v_available := least(v_available, p_daily - v_row.day_count);
        END IF;
        granted := greatest(v_available, 0);
        v_row.counts[10] := v_row.counts[10] + granted;
        v_row.day_count := v_row.day_count + granted;
        window_used := window_used + granted;
        day_used := v_row.day_count;

        retry_after := 0;
        IF granted = 0 THEN
            IF p_per_10s > 0 AND window_used >= p_per_10s THEN
                -- The oldest second with grants leaves the window at its start + 10 s.
                FOR v_index IN 1..10 LOOP
                    IF v_row.counts[v_index] > 0 THEN
                        retry_after := greatest(1, ceil(v_row.newest_second + v_index - p_now)::integer);
                        EXIT;
                    END IF;
                END LOOP;
            ELSE
                retry_after := greatest(1, ceil((v_row.day + 1) * 86400.0 - p_now)::integer);
            END IF;
        END IF;

        UPDATE rate_limit_windows
           SET newest_second = v_row.newest_second, counts = v_row.counts, day = v_row.day,
               day_count = v_row.day_count
         WHERE token_id = p_token;
        RETURN NEXT;
    END
    $$
    """,
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION corral_rate_lease(bigint, double precision, integer, integer, integer, bigint, integer)")
    op.execute("DROP TABLE rate_limit_windows")
