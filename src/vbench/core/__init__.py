"""The lowest layer: errors, paths, processes, files, formatting and the metric catalogue."""
