"""The notify stage as a FastStream app: ``faststream run services.notify.app:app``."""

from services.notify.stage import NotifyStage
from services.runtime import standalone

app = standalone(lambda ctx: [NotifyStage(ctx)])
