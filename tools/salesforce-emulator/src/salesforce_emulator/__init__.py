"""A stateful, in-memory Salesforce REST API emulator for Corral's tests, demos and benchmarks."""

from salesforce_emulator.app import create_app
from salesforce_emulator.settings import EmulatorSettings

__all__ = ["EmulatorSettings", "create_app"]
