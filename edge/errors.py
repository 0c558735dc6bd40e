"""Typed errors of the edge pipeline; the CLI maps each to its own exit code and a one-line message."""

from __future__ import annotations


class EdgeError(Exception):
    """Base class: every failure the pipeline reports on purpose."""

    exit_code = 1


class EdgeInputError(EdgeError):
    """Bad input found before any long work starts (data file, columns, labels, opset, sizes)."""

    exit_code = 2


class ParityError(EdgeError):
    """An exported artifact does not reproduce its source within the named tolerance."""

    exit_code = 3

    def __init__(self, variant: str, output: str, diff: float, atol: float) -> None:
        self.variant, self.output, self.diff, self.atol = variant, output, diff, atol
        super().__init__(f"{variant}: max |Δlogit| {diff:.1e} > atol {atol:.1e} on output {output!r}")


class GateError(EdgeError):
    """One or more variants failed the accuracy gate or a parity check; the report still gets written."""

    exit_code = 4

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        super().__init__("gates failed:\n  " + "\n  ".join(failures))
