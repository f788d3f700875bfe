"""The archive stage: every report into the store of record's report archive (see ``stage``)."""
