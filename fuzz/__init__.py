"""Fuzzing every parser of untrusted bytes: HTTP/1.1 heads and chunked bodies,
StatsD lines, log lines, ``pillion.yaml`` and AdmissionReview JSON.

``fuzz.targets`` holds one target per parser (see ``fuzz.target``), ``python -m
fuzz`` runs them under atheris (``make fuzz``), and ``tests/fuzz`` runs them
under Hypothesis and over the corpus in ``fuzz/corpus/`` (``make test``).
"""
