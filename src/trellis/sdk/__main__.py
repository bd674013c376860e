"""``python -m trellis.sdk``: regenerate the shipped SDKs from the builtin contracts."""

from pathlib import Path

from trellis.sdk import regenerate

if __name__ == "__main__":
    for package in regenerate(Path(__file__).parent):
        print(f"regenerated trellis.sdk.{package}")
