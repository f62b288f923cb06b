"""medbill: the composition root. Configuration, the Flask app factory and the `medbill` CLI live here."""
