"""The ingest stage as a FastStream app: ``faststream run services.ingest.app:app``."""

from services.ingest.stage import IngestStage
from services.runtime import build, context
from services.settings import Settings

settings = Settings()
ctx = context(settings)
app = build(settings, [IngestStage(ctx)], ctx)
