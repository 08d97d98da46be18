"""Self-contained HTML reports of stored runs, and history pages of a scenario.

Everything comes from the results store: a report can be rebuilt at any time without a VM.

* :mod:`.load` reads runs (metadata through one view per run, samples), :mod:`.data` analyses
  them (summaries, ratios, host fractions, derived CPU per I/O);
* :mod:`.tables` turns them into table rows with sanity flags, :mod:`.context` into the context
  strip, environment tables and diffs;
* :mod:`.forest` draws the headline forest plot, :mod:`.figures` every other figure (a registry:
  one decorated function per figure kind), :mod:`.draw` the shared primitives and the parallel
  drawing, :mod:`.palette` the colours (one per variant on every page);
* :mod:`.pages` and :mod:`.history` render the pages; :mod:`.summary` the terminal summary of
  ``vbench run``.

pandas, numpy and matplotlib are imported inside the functions: importing this package is cheap.
"""

from vbench.report.draw import LAST_DRAW
from vbench.report.history import build_history
from vbench.report.pages import build_report
from vbench.report.tables import HEADLINE_METRICS

__all__ = ["HEADLINE_METRICS", "LAST_DRAW", "build_history", "build_report"]
