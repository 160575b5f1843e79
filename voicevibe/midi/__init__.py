"""MIDI control: the mapping grammar, the router to commands, the input port."""
