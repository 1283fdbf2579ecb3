"""Placeholder entry point until the emulator lands."""


def run() -> None:
    raise SystemExit("salesforce-emulator is not built yet")
