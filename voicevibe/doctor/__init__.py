"""`voicevibe doctor`: what a show needs, whether it is there, and the fix for each."""
