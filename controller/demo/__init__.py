"""``kallglot demo`` and the whole-edge harness the end-to-end tests share.

run: the demo call and its output; stack: api, controller and bridge subprocesses plus a
FreeSWITCH (the double, or a real one); procs: child processes and HTTP helpers; audio: the
callers' voices and WAV files; progress: terminal progress lines."""
