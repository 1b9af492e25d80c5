"""The ``irlhf`` command's jobs, one module each: turn options into a ``Config``, call the library, write the
run directory. ``irlhf.cli`` builds the argument parser and dispatches here; no job imports another job."""
