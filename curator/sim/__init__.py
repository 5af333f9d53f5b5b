"""Multi-agent simulation: a user, an assistant and a tool executor, on any OpenAI-compatible model or offline.

    from curator.sim import SimConfig, Simulation
    sim = Simulation(store, SimConfig(toolset="weather", n=20), policy=MaskPolicy.of())
    async for event in sim.events(): ...
"""
from .config import SimConfig
from .engine import Simulation
from .events import Flagged, MessageAdded, SimulationDone, Summary, TrajectoryFinished, TrajectoryStarted

__all__ = ["SimConfig", "Simulation", "Flagged", "MessageAdded", "SimulationDone", "Summary", "TrajectoryFinished",
           "TrajectoryStarted"]
