"""The performance window (customtkinter): panels, cues, MIDI, first launch, platform details."""
