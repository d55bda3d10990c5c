"""How a measurement that could not be taken is reported: a reason, never a crashed run."""

from __future__ import annotations


class MeasurementUnavailable(Exception):
    """A piece under test is missing or failed (no `%serve` yet, a server that never answered).

    The run goes on; the report shows "not available" with this message.
    """
