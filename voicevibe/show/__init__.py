"""Show control: show files, cues, spoken triggers, seeds and transitions."""
