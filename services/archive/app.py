"""The archive stage as a FastStream app: ``faststream run services.archive.app:app``."""

from services.archive.stage import ArchiveStage
from services.runtime import standalone

app = standalone(lambda ctx: [ArchiveStage(ctx)])
