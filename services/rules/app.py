"""The rules stage as a FastStream app: ``faststream run services.rules.app:app``."""

from services.rules.stage import RulesStage
from services.runtime import build, context
from services.settings import Settings

settings = Settings()
ctx = context(settings)
app = build(settings, [RulesStage(ctx)], ctx)
