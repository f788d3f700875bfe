"""The compliance console: cases reviewed, decided and signed off in a browser (see app.py)."""
