"""`python -m salesforce_emulator` does what the `salesforce-emulator` console script does."""

from salesforce_emulator.main import run

run()
