"""The ingest stage as a FastStream app: ``faststream run services.ingest.app:app``."""

from services.ingest.stage import IngestStage
from services.runtime import standalone

app = standalone(lambda ctx: [IngestStage(ctx)])
