"""bench_synthesis reads the server's latency split with Prometheus's histogram_quantile rule."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench.bench_synthesis import histogram_quantile
from services.synthesis.batcher import REQUEST_BUCKETS_S


def _buckets(registry: CollectorRegistry, name: str) -> list[tuple[float, float]]:
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.name == name:
            return [(float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")]
    raise AssertionError(f"{name} not exported")


def test_quantile_interpolates_inside_the_bucket_between_two_scrapes():
    registry = CollectorRegistry()
    h = Histogram("lat_seconds", "test", buckets=REQUEST_BUCKETS_S, registry=registry)
    for _ in range(50):
        h.observe(0.004)  # before the first scrape: must not count
    before = _buckets(registry, "lat_seconds")
    for _ in range(90):
        h.observe(0.04)  # bucket (0.03, 0.05]
    for _ in range(10):
        h.observe(0.35)  # bucket (0.3, 0.4]
    after = _buckets(registry, "lat_seconds")
    # 100 new observations: rank 50 is the 50th of 90 in (0.03, 0.05]; rank 99 is the 9th of
    # 10 in (0.3, 0.4]; Prometheus interpolates linearly inside the bucket.
    assert histogram_quantile(0.5, before, after) == pytest.approx(0.03 + 0.02 * 50 / 90)
    assert histogram_quantile(0.99, before, after) == pytest.approx(0.3 + 0.1 * 9 / 10)
    # Without a first scrape, everything since start: 150 observations, rank 148.5 is the
    # 8.5th of 10 in (0.3, 0.4].
    assert histogram_quantile(0.99, [], after) == pytest.approx(0.3 + 0.1 * 8.5 / 10)


def test_quantile_of_nothing_is_nan_and_of_the_inf_bucket_the_top_bound():
    registry = CollectorRegistry()
    h = Histogram("lat_seconds", "test", buckets=(0.1, 1.0), registry=registry)
    empty = _buckets(registry, "lat_seconds")
    assert math.isnan(histogram_quantile(0.99, empty, empty))
    h.observe(50.0)
    assert histogram_quantile(0.99, empty, _buckets(registry, "lat_seconds")) == 1.0
