"""The typed scenario: its schema, its one-line errors and its resource budget."""
