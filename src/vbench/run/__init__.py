"""Running a scenario: the runner, the run loop, adaptive rounds, A/B, fault injection."""
