"""The dsx runtime: everything a program needs to run, without the .dsx toolchain.

This package must never import ``dsx.grammar`` or ``dsx.compiler``.
"""
