"""The records stage: alerts into the store of record, as cases (see ``stage``)."""
