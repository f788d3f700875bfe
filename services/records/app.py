"""The records stage as a FastStream app: ``faststream run services.records.app:app``."""

from services.records.stage import RecordsStage
from services.runtime import standalone

app = standalone(lambda ctx: [RecordsStage(ctx)])
