"""A duplicate scan with splink on an in-process DuckDB: train the model, score the candidate pairs, cluster.

The account's records arrive as features (`domain/matching.py`). Candidate pairs come from the block keys
(records sharing a key; keys held by more than MAX_BLOCK records are skipped), computed in DuckDB and
registered with splink (`register_blocked_pairs_for_predict`), so the scan scores exactly the pairs the
incremental path would find, and its cost grows with the pairs, not with n².

Parameters come from the account's own unlabelled records: u by random sampling, m by EM on two
independent blockings (by name, and by another strong field), the prior from deterministic rules with
an assumed recall. Nothing is fitted to labels.

Runs synchronously (DuckDB releases the GIL while it works); callers run it in a worker thread.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from merge_svc.domain import matching
from merge_svc.domain.matching import MatchingSettings, TrainedModel

log = logging.getLogger(__name__)

# Assumed recall of "same names and same strongest other value" as a rule for true duplicates: it finds
# the clean duplicates and misses those with a typo in one of the two (splink's guide uses 0.6-0.8).
DETERMINISTIC_RECALL = 0.7
U_SAMPLE_PAIRS = 1e6
EM_MAX_PAIRS = 2e6
M_FLOOR = 1e-3
UNSEEN_U = 1e-6
DUCKDB_MEMORY = "1GB"

Progress = Callable[[str, int], None]


@dataclass
class ScanResult:
    model: TrainedModel
    splink_model: dict[str, Any]
    # (left id, right id, probability, matchedOn) for every pair at or above the threshold
    pairs: list[tuple[int, int, float, dict[str, str]]]
    candidate_pairs: int
    records: int


class FeatureTable:
    """The features and block keys of the records read so far, kept as Arrow batches: a million records
    take a few hundred MB this way, against gigabytes as Python dicts."""

    def __init__(self, settings: MatchingSettings) -> None:
        self.settings = settings
        self.columns = matching.feature_columns(settings)
        types = {c: (pa.list_(pa.string()) if t.endswith("[]") else pa.string()) for c, t in self.columns.items()}
        self.schema = pa.schema([("unique_id", pa.int64()), *types.items()])
        self.batches: list[pa.RecordBatch] = []
        self.key_batches: list[pa.RecordBatch] = []
        self.records = 0

    def add(self, rows: Iterable[tuple[int, Mapping[str, Any], Iterable[str]]]) -> None:
        """(record id, features, block keys) of some records."""
        data: dict[str, list[Any]] = {name: [] for name in self.schema.names}
        key_ids: list[int] = []
        keys: list[str] = []
        for record_id, values, record_keys in rows:
            data["unique_id"].append(record_id)
            for col in self.columns:
                data[col].append(values.get(col))
            for key in record_keys:
                key_ids.append(record_id)
                keys.append(key)
        self.records += len(data["unique_id"])
        self.batches.append(pa.RecordBatch.from_pydict(data, schema=self.schema))
        self.key_batches.append(pa.RecordBatch.from_pydict({"record_id": key_ids, "block_key": keys},
                                                           schema=KEY_SCHEMA))


KEY_SCHEMA = pa.schema([("record_id", pa.int64()), ("block_key", pa.string())])


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    """Run a statement to completion (DuckDB refuses new work while a result is unread)."""
    return con.execute(sql).fetchall()


def _prior(con: duckdb.DuckDBPyConnection, n: int, columns: list[str]) -> float:
    """λ, the share of all pairs that are duplicates: the pairs agreeing on names and on one strong other value,
    divided by the rule's assumed recall (splink's estimate_probability_two_random_records_match, computed here so
    that a rule no pair satisfies gives a floor of one duplicate rather than zero)."""
    agreeing = 0.0
    if columns:
        quoted = ", ".join(f'"{c}"' for c in columns)
        present = " AND ".join(f'"{c}" IS NOT NULL' for c in columns)
        agreeing = float(_run(con, f"SELECT coalesce(sum(c * (c - 1) / 2), 0) FROM (SELECT count(*) AS c "
                                   f"FROM features WHERE {present} GROUP BY {quoted})")[0][0])
    total = max(n * (n - 1) / 2, 1.0)
    return min(max(agreeing / DETERMINISTIC_RECALL, 1.0) / total, 0.5)


def _regularise(model: dict[str, Any]) -> dict[str, Any]:
    """Corrections of what a finite, clean sample cannot say, written into the model so that splink's predictions
    and the Python scorer use the same numbers:

    - a duplicate can always differ on any value (a move, a new phone): no level's m stays below M_FLOOR, where EM
      on data without such cases would put it at zero and let one difference veto every other agreement; a level
      EM never saw among likely duplicates gets M_FLOOR too;
    - a comparison no EM session could train (splink 5 stops a session whose m reaches exactly zero) gets splink's
      own default m: 0.95 for its top level, the rest shared evenly;
    - a comparison never made (no two records both hold a value) weighs nothing at any level;
    - a level never seen among the randomly sampled pairs (swapped names, an email shared by two contacts) gets
      u = 1e-6, splink's own value for a level not observed, rather than an unknown that would weigh nothing.
    """
    for comparison in model["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        if not any(isinstance(lv.get("u_probability"), (int, float)) and lv["u_probability"] > 0 for lv in levels):
            # Never compared (no two records both hold the value): the comparison says nothing either way.
            for level in levels:
                level["m_probability"] = level["u_probability"] = 1 / len(levels)
            continue
        trained = any(isinstance(lv.get("m_probability"), (int, float)) for lv in levels)
        for rank, level in enumerate(levels):
            m, u = level.get("m_probability"), level.get("u_probability")
            if not trained:
                m = _default_m(rank, len(levels))
            level["m_probability"] = max(float(m), M_FLOOR) if isinstance(m, (int, float)) else M_FLOOR
            if not isinstance(u, (int, float)) or u <= 0:
                level["u_probability"] = UNSEEN_U
        if trained and not _agreement_is_evidence(levels):
            for rank, level in enumerate(levels):
                level["m_probability"] = _default_m(rank, len(levels))
    return model


def _default_m(rank: int, count: int) -> float:
    """splink's own m when it has none: 0.95 for the top level (exact), the rest shared evenly."""
    return 0.95 if rank == 0 else 0.05 / max(count - 1, 1)


def _agreement_is_evidence(levels: list[dict[str, Any]]) -> bool:
    """Whether an exact agreement counts for a match. EM on a small account can settle on the opposite (seen:
    first name, last name, phone, company and city all exact scoring 0.2%); such a comparison falls back to
    splink's default m."""
    return levels[0]["m_probability"] >= levels[0]["u_probability"]


def _untrained(model: dict[str, Any]) -> list[str]:
    return [c["output_column_name"] for c in model["comparisons"]
            if not any(isinstance(lv.get("m_probability"), (int, float)) for lv in c["comparison_levels"])]


def _usable(con: duckdb.DuckDBPyConnection, columns: list[str]) -> bool:
    """Whether some pair agrees on these columns (EM needs pairs)."""
    quoted = ", ".join(f'"{c}"' for c in columns)
    present = " AND ".join(f'"{c}" IS NOT NULL' for c in columns)
    return bool(_run(con, f"SELECT count(*) FROM (SELECT 1 FROM features WHERE {present} GROUP BY {quoted} "
                          f"HAVING count(*) > 1 LIMIT 1)")[0][0])


def scan(table: FeatureTable, *, progress: Progress | None = None, seed: int = 42) -> ScanResult:
    """Train on the records' features, score the blocked pairs, keep those at or above the threshold."""
    from splink import DuckDBAPI, Linker, block_on

    report = progress or (lambda phase, n: None)
    con = duckdb.connect()
    _run(con, f"SET memory_limit = '{DUCKDB_MEMORY}'")
    _run(con, "SET preserve_insertion_order = false")
    # Past the memory limit DuckDB spills to disk: /tmp, the one place a read-only container can write.
    _run(con, f"SET temp_directory = '{Path(tempfile.gettempdir()) / 'corral-duckdb'}'")
    settings = table.settings
    features = pa.Table.from_batches(table.batches, schema=table.schema)
    keys = pa.Table.from_batches(table.key_batches, schema=KEY_SCHEMA)
    table.batches, table.key_batches = [], []  # DuckDB holds its own copy from here on
    n = features.num_rows
    con.register("features_arrow", features)
    _run(con, "CREATE TABLE features AS SELECT * FROM features_arrow")
    con.unregister("features_arrow")
    con.register("keys_arrow", keys)
    _run(con, "CREATE TABLE block_keys AS SELECT * FROM keys_arrow")
    con.unregister("keys_arrow")
    del features, keys
    _run(con, f"""
        CREATE TABLE blocked_pairs AS
        WITH usable AS (
            SELECT block_key FROM block_keys GROUP BY block_key
            HAVING count(*) BETWEEN 2 AND {matching.MAX_BLOCK}
        ), filed AS (
            SELECT k.record_id, k.block_key FROM block_keys k JOIN usable USING (block_key)
        )
        SELECT DISTINCT '0' AS match_key, a.record_id AS join_key_l, b.record_id AS join_key_r
          FROM filed a JOIN filed b ON a.block_key = b.block_key AND a.record_id < b.record_id
    """)
    _run(con, "DROP TABLE block_keys")
    candidates = _run(con, "SELECT count(*) FROM blocked_pairs")[0][0]
    report("blocked", candidates)

    db_api = DuckDBAPI(connection=con)
    specs = matching.comparisons(settings)
    splink_settings = {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "comparisons": matching.splink_comparisons(settings),
        "blocking_rules_to_generate_predictions": [],
        "retain_matching_columns": True,
        "retain_intermediate_calculation_columns": True,  # the gamma columns say what matched
    }
    name_columns, other_candidates = matching.training_rules(settings)
    others = [c for c in other_candidates if _usable(con, [c])]
    splink_settings["probability_two_random_records_match"] = _prior(con, n, name_columns + others[:1])
    input_table = db_api.register("features", table_name="records")
    linker = Linker(input_table, splink_settings, log_level=logging.WARNING)
    total_pairs = n * (n - 1) / 2
    linker.training.estimate_u_using_random_sampling(max_pairs=min(U_SAMPLE_PAIRS, max(total_pairs, 1.0)),
                                                     seed=seed)
    report("u estimated", n)
    rules = ([name_columns] if name_columns and _usable(con, name_columns) else []) + [[c] for c in others]
    for columns in rules:
        before = linker.misc.save_model_to_json()
        if rules.index(columns) > 0 and not _untrained(before):
            break
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*columns), max_pairs=EM_MAX_PAIRS, estimate_without_term_frequencies=True)
        except Exception as exc:  # EM did not converge on this rule: the next candidate trains instead
            log.warning("EM blocked on %s skipped: %r", columns, exc)
            # A failed session leaves the linker without the comparisons it set aside: start again from before.
            linker = Linker(input_table, before, log_level=logging.WARNING)
    report("trained", n)
    splink_model = _regularise(linker.misc.save_model_to_json())
    model = TrainedModel.from_splink(splink_model)
    # Predictions use the floored model: a linker built from it (the saved model is a complete settings dict).
    linker = Linker(input_table, splink_model, log_level=logging.WARNING)

    pairs: list[tuple[int, int, float, dict[str, str]]] = []
    if candidates:
        blocked = db_api.register("blocked_pairs", table_name="blocked")
        linker.table_management.register_blocked_pairs_for_predict(blocked)
        predictions = linker.inference.predict(threshold_match_probability=settings.threshold,
                                               warning_mode="never")
        gamma_columns = [f"gamma_{spec.name}" for spec in specs]
        relation = con.sql(f"SELECT unique_id_l, unique_id_r, match_probability, {', '.join(gamma_columns)} "
                           f"FROM {predictions.physical_name}")
        for row in relation.fetchall():
            gammas = {spec.name: row[3 + i] for i, spec in enumerate(specs)}
            left, right = int(row[0]), int(row[1])
            if left > right:
                left, right = right, left
            pairs.append((left, right, float(row[2]), matching.matched_on_from_gammas(specs, gammas)))
    report("scored", len(pairs))
    con.close()
    return ScanResult(model=model, splink_model=splink_model, pairs=pairs, candidate_pairs=int(candidates),
                      records=n)


