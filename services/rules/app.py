"""The rules stage as a FastStream app: ``faststream run services.rules.app:app``."""

from services.rules.stage import RulesStage
from services.runtime import standalone

app = standalone(lambda ctx: [RulesStage(ctx)])
