"""`benchmarks/moto_indexed.py` answers every listing as plain moto does: the same keys, common
prefixes, pages and truncation, before and after keys are added, overwritten and deleted."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.support.moto_server import moto_server
from tests.support.paths import ROOT
from tests.support.requirements import MOTO_SERVER, require


@contextmanager
def _server(command: list[str] | None = None) -> Iterator[Any]:
    """A moto server (plain, or `command`) and a boto3 client of a bucket "bkt" in it."""
    import boto3

    with moto_server(command) as port:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="bkt")
        yield client


def _keys(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        trial = f"run-{rng.randrange(2):03d}/trial_{rng.randrange(40):05d}"
        leaf = rng.choice(["result.json", "robprune-end.json", "params.json"])
        if rng.random() < 0.6:
            leaf = f"checkpoint_{rng.randrange(3):06d}/" + rng.choice(["model.pt", "final/r.json"])
        out.append(f"exp/tune/{trial}/{leaf}")
    return out + ["exp/experiment.json", "exp/tune/run-000/experiment_state-1.json", "top.txt"]


def _listing(client: Any, v2: bool, **query: Any) -> list[tuple[Any, ...]]:
    """Every page of one listing, as (keys, common prefixes, truncated) per page."""
    pages, token = [], None
    while True:
        listing = client.list_objects_v2 if v2 else client.list_objects
        page = listing(Bucket="bkt", **query, **(token or {}))
        keys = tuple(k["Key"] for k in page.get("Contents", []))
        folders = tuple(p["Prefix"] for p in page.get("CommonPrefixes", []))
        pages.append((keys, folders, page["IsTruncated"]))
        if not page["IsTruncated"] or len(pages) > 200:
            return pages
        if v2:
            token = {"ContinuationToken": page["NextContinuationToken"]}
        else:
            token = {"Marker": page.get("NextMarker") or keys[-1]}


QUERIES = [
    {"Prefix": "exp/tune/run-000/", "Delimiter": "/"},
    {"Prefix": "exp/tune/run-001/trial_00007/", "Delimiter": "/"},
    {"Prefix": "exp/tune/run-000/trial_0001"},
    {"Prefix": "exp/tune/", "MaxKeys": 7},
    {"Prefix": "exp/tune/run-001/", "Delimiter": "/", "MaxKeys": 5},
    {"Prefix": "exp/nothing/"},
    {"Delimiter": "/"},
    {"MaxKeys": 11},
]


@pytest.mark.parametrize("v2", [True, False], ids=["v2", "v1"])
def test_listings_equal_plain_motos(v2):
    require(MOTO_SERVER, "moto_server is not installed (dev extra moto[server])")
    rng = random.Random(7)
    first, later = _keys(rng, 300), _keys(rng, 120)
    gone = rng.sample(first, 60)
    indexed_server = [sys.executable, str(ROOT / "benchmarks" / "moto_indexed.py")]
    with _server() as plain, _server(indexed_server) as indexed:
        answers: dict[str, list[Any]] = {"plain": [], "indexed": []}
        for name, client in (("plain", plain), ("indexed", indexed)):
            for key in first:
                client.put_object(Bucket="bkt", Key=key, Body=b"x")
            answers[name] += [_listing(client, v2, **q) for q in QUERIES]  # builds the index
            for key in later + first[:20]:  # new keys, and overwrites
                client.put_object(Bucket="bkt", Key=key, Body=b"y")
            for key in gone:
                client.delete_object(Bucket="bkt", Key=key)
            answers[name] += [_listing(client, v2, **q) for q in QUERIES]
        assert answers["indexed"] == answers["plain"]
        assert any(keys for q in answers["plain"] for keys, _, _ in q)  # the listings list
        assert any(trunc for q in answers["plain"] for _, _, trunc in q)  # and page
