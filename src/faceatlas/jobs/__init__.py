"""The use cases: one function per verb (collect a person, import a folder, take over the old
storage, bulk actions), and the one place that decides whether work runs in a thread here or
on Celery workers (``worker/``)."""
