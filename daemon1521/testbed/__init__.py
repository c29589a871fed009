"""The emulated test bed: a site wired from the daemon and the emulator, with callers who listen.

It sits above both: commands, tests and benchmarks import it; the daemon
package imports nothing of the emulator.
"""
