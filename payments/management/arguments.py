"""Command-line arguments shared by the payments commands: bounded, so odd input is a usage error, not a crash."""

import argparse


def bounded_int(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return number

    return parse
