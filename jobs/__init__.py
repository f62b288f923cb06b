"""Background work on RQ: queues, the after-commit dispatcher, the worker runtime, job functions and schedules."""
