"""`python -m voicevibe` runs the command line (and, started by VoiceVibe.app, shows a failure in a dialog)."""

import sys

from voicevibe.cli import main
from voicevibe.launcher import run_from_bundle

if __name__ == "__main__":
    sys.exit(run_from_bundle(main))
