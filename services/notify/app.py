"""The notify stage as a FastStream app: ``faststream run services.notify.app:app``."""

from services.notify.stage import NotifyStage
from services.runtime import build, context
from services.settings import Settings

settings = Settings()
ctx = context(settings)
app = build(settings, [NotifyStage(ctx)], ctx)
