"""How a stage runs: FastStream subscribers on Redis consumer groups, supervised.

- ``contract``: what a stage is (``Stage``, ``StreamStage``) and what it gets (``Context``).
- ``worker``: one stage bound to one stream's group (a reader and a reclaimer).
- ``deadletter``: entries a stage gives up on, for every stage alike.
- ``groups``: the consumer-group commands FastStream does not send.
- ``supervisor``: the stages of one process, started, healed and stopped with the app.
- ``app``: the FastStream app that runs them (``run``, ``build``, ``standalone``).
"""

from services.runtime.app import build, context, run, standalone
from services.runtime.contract import Consumes, Context, GatedStage, Stage, StreamStage

__all__ = [
    "Consumes",
    "Context",
    "GatedStage",
    "Stage",
    "StreamStage",
    "build",
    "context",
    "run",
    "standalone",
]
