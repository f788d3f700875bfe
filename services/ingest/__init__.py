"""The ingest stage: sources become validated import reports on the reports stream, once each."""
