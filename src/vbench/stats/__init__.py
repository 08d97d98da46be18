"""Statistics on stored samples: tests, ratios, verdicts, comparisons and history. No I/O."""
