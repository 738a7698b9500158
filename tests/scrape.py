"""Read a Prometheus /metrics page into sample values (for tests of every process's metrics)."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    text: str

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` with exactly these labels; 0 when absent (a counter not yet touched)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(lbls)[label] for (n, lbls) in self.samples if n == name and label in dict(lbls)}


def scrape(url: str) -> Scrape:
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    return Scrape(samples, response.text)
