"""VoiceVibe: a performer's voice turned into live visuals."""

__version__ = "0.1.0"
